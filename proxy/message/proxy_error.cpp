#include "proxy/message/proxy_error.h"

namespace sluice::proxy {

int status_of(ErrorKind k) {
    switch (k) {
    case ErrorKind::bad_request: return 400;
    case ErrorKind::uri_too_long: return 414;
    case ErrorKind::headers_too_large: return 431;
    case ErrorKind::request_timeout: return 408;
    case ErrorKind::no_route: return 404;
    case ErrorKind::websocket_disabled: return 403;
    case ErrorKind::upstream_connect_failed: return 502;
    case ErrorKind::upstream_connect_timeout: return 504;
    case ErrorKind::upstream_reset: return 502;
    case ErrorKind::upstream_bad_response: return 502;
    case ErrorKind::upstream_timeout: return 504;
    case ErrorKind::max_duration: return 504;
    case ErrorKind::no_healthy_endpoint: return 503;
    case ErrorKind::upstream_tls_failed: return 502;
    case ErrorKind::queue_full: return 503;
    case ErrorKind::queue_timeout: return 503;
    case ErrorKind::not_implemented: return 501;
    }
    return 500;
}

std::string_view code_of(ErrorKind k) {
    switch (k) {
    case ErrorKind::bad_request: return "bad_request";
    case ErrorKind::uri_too_long: return "uri_too_long";
    case ErrorKind::headers_too_large: return "headers_too_large";
    case ErrorKind::request_timeout: return "request_timeout";
    case ErrorKind::no_route: return "no_route";
    case ErrorKind::websocket_disabled: return "websocket_disabled";
    case ErrorKind::upstream_connect_failed: return "upstream_connect_failed";
    case ErrorKind::upstream_connect_timeout: return "upstream_connect_timeout";
    case ErrorKind::upstream_reset: return "upstream_reset";
    case ErrorKind::upstream_bad_response: return "upstream_bad_response";
    case ErrorKind::upstream_timeout: return "upstream_timeout";
    case ErrorKind::max_duration: return "max_duration";
    case ErrorKind::no_healthy_endpoint: return "no_healthy_endpoint";
    case ErrorKind::upstream_tls_failed: return "upstream_tls_failed";
    case ErrorKind::queue_full: return "queue_full";
    case ErrorKind::queue_timeout: return "queue_timeout";
    case ErrorKind::not_implemented: return "not_implemented";
    }
    return "internal";
}

std::string_view reason_of(int status) {
    switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

std::string render_error(ErrorKind kind, std::string_view message, bool close, bool head_request) {
    int status = status_of(kind);
    std::string out;
    out.reserve(200 + message.size());
    out += "HTTP/1.1 ";
    out += std::to_string(status);
    out += ' ';
    out += reason_of(status);
    out += "\r\nContent-Type: text/plain; charset=utf-8\r\nx-sluice-error: ";
    out += code_of(kind);
    out += "\r\nContent-Length: ";
    out += std::to_string(message.size() + 1);
    if (close) out += "\r\nConnection: close";
    // A client that backs off a second usually finds a free endpoint or queue place.
    if (kind == ErrorKind::queue_full || kind == ErrorKind::queue_timeout) out += "\r\nRetry-After: 1";
    out += "\r\n\r\n";
    if (!head_request) {
        out += message;
        out += '\n';
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> error_fields(ErrorKind kind, std::string_view message) {
    std::vector<std::pair<std::string, std::string>> out{
        {"content-type", "text/plain; charset=utf-8"},
        {"x-sluice-error", std::string(code_of(kind))},
        {"content-length", std::to_string(message.size() + 1)},
    };
    if (kind == ErrorKind::queue_full || kind == ErrorKind::queue_timeout) out.emplace_back("retry-after", "1");
    return out;
}

}  // namespace sluice::proxy
