// What both nghttp2 sessions (the server side for clients, the client side
// for upstreams) say to nghttp2 the same way: a field as nghttp2 takes it,
// and a body source's answer as a data provider's return value.
#pragma once
#include "proxy/message/h2_session.h"

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::proxy {

// A view of `name` and `value`, which must outlive the submit call (nghttp2 copies them).
nghttp2_nv make_nv(std::string_view name, std::string_view value);

// The data provider's answer for `pull`: its byte count, or DEFERRED; at the
// end, the EOF flag, and the trailers submitted to end the stream after it.
ssize_t finish_pull(nghttp2_session* session, std::int32_t stream, const H2Session::Pull& pull, std::uint32_t* flags);

// Feeds the peer's bytes to `session`. False: the connection must end; `error`
// says why (if still empty), `flooded` whether to close at once (answers piled
// up unread); otherwise a GOAWAY is queued.
bool receive_bytes(nghttp2_session* session, std::string_view bytes, std::string& error, bool& flooded);
// Appends frames ready to go out to `out`, up to about `max` bytes.
void take_frames(nghttp2_session* session, std::string& out, std::size_t max);
// Neither side has anything more to say.
bool session_finished(nghttp2_session* session);

}  // namespace sluice::proxy
