// The short names the test support and the tests use for Asio and Beast.
#pragma once
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>

namespace sluice::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

}  // namespace sluice::test
