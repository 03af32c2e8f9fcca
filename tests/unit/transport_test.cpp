// Transport's plain write: one sendmsg first, and Asio for whatever the
// socket did not take. Real sockets on port 0.
#include "proxy/net/transport.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace asio = boost::asio;
using sluice::proxy::Transport;
using tcp = asio::ip::tcp;

namespace {

struct SocketPair {
    tcp::socket writer, reader;
};

SocketPair connected_pair(asio::io_context& io) {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::socket writer(io), reader(io);
    writer.connect(acceptor.local_endpoint());
    acceptor.accept(reader);
    return {std::move(writer), std::move(reader)};
}

// Bytes no two places of the stream share for a while, so a piece that is
// skipped, repeated or reordered shows.
std::string pattern(std::size_t size, char seed) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>(seed + (i * 7 + i / 251) % 97);
    return s;
}

}  // namespace

TEST(Transport, AGatheredWriteTheSocketCannotTakeAtOnceArrivesWholeAndInOrder) {
    asio::io_context io;
    auto [writer_socket, reader] = connected_pair(io);
    writer_socket.set_option(asio::socket_base::send_buffer_size(16 * 1024));
    reader.set_option(asio::socket_base::receive_buffer_size(16 * 1024));
    Transport writer(std::move(writer_socket));
    // Pieces of odd sizes, one empty, far more than both buffers hold: the
    // first sendmsg takes part of one piece, Asio must write the rest.
    const std::vector<std::string> pieces = {pattern(3'000, 'a'), pattern(700'001, 'b'), std::string(),
                                             pattern(1'500'017, 'c'), pattern(5, 'd')};
    std::vector<asio::const_buffer> gather;
    std::string expected;
    for (const auto& p : pieces) {
        gather.push_back(asio::buffer(p));
        expected += p;
    }
    boost::system::error_code write_ec;
    std::size_t written = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto [ec, n] = co_await writer.write(gather);
            write_ec = ec;
            written = n;
            writer.close();
        },
        asio::detached);
    std::string got(expected.size(), '\0');
    boost::system::error_code read_ec;
    std::size_t read = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto [ec, n] = co_await asio::async_read(reader, asio::buffer(got), asio::as_tuple(asio::use_awaitable));
            read_ec = ec;
            read = n;
        },
        asio::detached);
    io.run();
    EXPECT_FALSE(write_ec) << write_ec.message();
    EXPECT_EQ(written, expected.size());
    EXPECT_FALSE(read_ec) << read_ec.message();
    ASSERT_EQ(read, expected.size());
    EXPECT_TRUE(got == expected) << "the bytes arrived changed or out of order";
}

TEST(Transport, AWriteToAClosedPeerFailsWithTheSocketsError) {
    asio::io_context io;
    auto [writer_socket, reader] = connected_pair(io);
    reader.set_option(asio::socket_base::linger(true, 0));
    reader.close();  // a reset
    Transport writer(std::move(writer_socket));
    const std::string bytes = pattern(64 * 1024, 'x');
    boost::system::error_code ec;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            for (int i = 0; i < 100 && !ec; ++i) ec = std::get<0>(co_await writer.write(asio::buffer(bytes)));
        },
        asio::detached);
    io.run();
    EXPECT_TRUE(ec == asio::error::connection_reset || ec == asio::error::broken_pipe) << ec.message();
}
