// SPDX-License-Identifier: MIT
//
// asio-echo --port N [--host H]: the Boost.Asio reference for bench-tcp-echo.
//
// The textbook Asio echo server: one io_context (concurrency hint 1: one
// thread, no locking), one session object per connection owning a 64 KiB
// buffer, async_read_some then async_write of what was read, then the next
// read. TCP_NODELAY is on. Like examples/echo-server, the first line on
// stdout is "listening on HOST:PORT" and SIGINT/SIGTERM exit 0.
#include <boost/asio.hpp>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace
{

class session : public std::enable_shared_from_this<session>
{
  public:
    explicit session(tcp::socket s) : sock_(std::move(s))
    {
    }

    void start()
    {
        boost::system::error_code ec;
        sock_.set_option(tcp::no_delay(true), ec);
        read();
    }

  private:
    void read()
    {
        auto self = shared_from_this();
        sock_.async_read_some(asio::buffer(buf_),
                              [this, self](boost::system::error_code ec, std::size_t n) {
                                  if (!ec) {
                                      write(n);
                                  }
                              });
    }

    void write(std::size_t n)
    {
        auto self = shared_from_this();
        asio::async_write(sock_, asio::buffer(buf_.data(), n),
                          [this, self](boost::system::error_code ec, std::size_t) {
                              if (!ec) {
                                  read();
                              }
                          });
    }

    tcp::socket sock_;
    std::array<char, 64 * 1024> buf_;
};

void accept(tcp::acceptor &acc)
{
    acc.async_accept([&acc](boost::system::error_code ec, tcp::socket s) {
        if (!ec) {
            std::make_shared<session>(std::move(s))->start();
        }
        accept(acc);
    });
}

int usage()
{
    std::fprintf(stderr, "usage: asio-echo --port N [--host H]\n");
    return 2;
}

} // namespace

int main(int argc, char **argv)
{
    std::string host = "127.0.0.1";
    long port = -1;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = std::strtol(argv[++i], nullptr, 10);
        } else if (std::strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else {
            return usage();
        }
    }
    if (port < 0 || port > 65535) {
        return usage();
    }
    std::signal(SIGPIPE, SIG_IGN);
    try {
        asio::io_context ctx(1);
        tcp::endpoint ep(asio::ip::make_address(host), static_cast<unsigned short>(port));
        tcp::acceptor acc(ctx, ep);
        bool v6 = ep.address().is_v6();
        std::printf("listening on %s%s%s:%u\n", v6 ? "[" : "", host.c_str(), v6 ? "]" : "",
                    acc.local_endpoint().port());
        std::fflush(stdout);
        asio::signal_set signals(ctx, SIGINT, SIGTERM);
        signals.async_wait([&ctx](boost::system::error_code, int) { ctx.stop(); });
        accept(acc);
        ctx.run();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "asio-echo: %s\n", e.what());
        return 1;
    }
    return 0;
}
