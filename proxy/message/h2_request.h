// An HTTP/2 request head, field by field as HPACK decodes it, turned into the
// RequestHead the rest of sluice routes and forwards: :method, :path and
// :authority become the method, target and host, the other fields are kept.
// The path goes through the same rules as an HTTP/1.1 request target.
//
// nghttp2 has already refused what RFC 9113 8.2 and 8.3 forbid (upper-case
// names, connection-specific fields, a missing or repeated pseudo-header, a
// pseudo-header after a regular one); what is left here is the size bound and
// sluice's own rules.
#pragma once
#include "config/spec.h"
#include "proxy/message/http_head.h"
#include "proxy/message/message_rules.h"

#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::proxy {

class H2RequestBuilder {
public:
    // `limit`: the most bytes of names and values (32 more per field, as
    // SETTINGS_MAX_HEADER_LIST_SIZE counts them) a head may have.
    void reset(std::size_t limit);
    // One decoded field. Past the limit fields are counted, not kept.
    void add(std::string_view name, std::string_view value);
    // The head is complete: fills `head` (its views point into head.raw).
    // A refusal says what the client did wrong (400, or 431 over the limit).
    std::optional<Refusal> finish(RequestHead& head, const config::Paths& paths);
    // Bytes of the head counted so far (for the limit).
    std::size_t size() const { return size_; }

private:
    std::string raw_;  // "name\0value\0" for each field, in order
    std::vector<std::pair<std::uint32_t, std::uint32_t>> spans_;  // name and value lengths, per field
    std::size_t size_ = 0, limit_ = 0;
    bool over_ = false;
};

}  // namespace sluice::proxy
