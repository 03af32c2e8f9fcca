#include "proxy/net/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::proxy {

ListenerInfo::~ListenerInfo() {
    for (int fd : fds)
        if (fd >= 0) ::close(fd);
}

std::string endpoint_text(const boost::asio::ip::tcp::endpoint& ep) {
    // Appended in place: GCC 12 at -O3 misreads the inlined chain of
    // temporaries that `"[" + a + "]" + ...` makes (-Wstringop-overflow).
    auto a = ep.address();
    std::string out;
    out.reserve(48);
    if (a.is_v6()) out += '[';
    out += a.to_string();
    if (a.is_v6()) out += ']';
    out += ':';
    out += std::to_string(ep.port());
    return out;
}

std::string ListenerInfo::bound_text() const { return endpoint_text(bound); }

namespace {

// Returns the descriptor, or -1 with `err` set to errno.
int open_one(const boost::asio::ip::tcp::endpoint& ep, int& err) {
    int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        err = errno;
        return -1;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (ep.address().is_v6()) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd, ep.data(), static_cast<socklen_t>(ep.size())) != 0 || ::listen(fd, SOMAXCONN) != 0) {
        err = errno;
        ::close(fd);
        return -1;
    }
    return fd;
}

}  // namespace

std::shared_ptr<ListenerInfo> bind_listener(const config::ListenerSpec& spec, std::size_t count, std::string& error) {
    boost::system::error_code ec;
    auto address = boost::asio::ip::make_address(spec.address, ec);
    if (ec) {
        error = "listener \"" + spec.name + "\": \"" + spec.address + "\" is not an IP address";
        return nullptr;
    }
    auto info = std::make_shared<ListenerInfo>();
    info->spec = spec;
    if (spec.tls) info->scheme = "https";
    boost::asio::ip::tcp::endpoint ep(address, spec.port);
    for (std::size_t i = 0; i < count; ++i) {
        int err = 0;
        int fd = open_one(ep, err);
        if (fd < 0) {
            std::string why = std::strerror(err);
            for (auto& ch : why) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            error = "listener \"" + spec.name + "\" cannot listen on " + endpoint_text(ep) + ": " + why;
            if (err == EADDRINUSE) error += " (another process or listener holds this port; pick another port)";
            if (err == EACCES) error += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)";
            return nullptr;  // ~ListenerInfo closes the ones already open
        }
        info->fds.push_back(fd);
        if (i == 0) {
            // Port 0: learn the port the kernel picked; the other sockets join it.
            sockaddr_storage ss{};
            socklen_t len = sizeof ss;
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
            ep.port(ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                                   : reinterpret_cast<sockaddr_in*>(&ss)->sin_port));
            info->bound = ep;
        }
    }
    return info;
}

}  // namespace sluice::proxy
