#include "meshd/app/http_server.hpp"

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <charconv>

namespace meshd::app {
namespace {

using boost::asio::ip::tcp;
constexpr std::size_t kMaxHeader = 8192;

std::string response(int code, const char* status, const std::string& type,
                     const std::string& body) {
  return "HTTP/1.1 " + std::to_string(code) + " " + status + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         body;
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  explicit Impl(boost::asio::io_context& io, HttpRoutes r)
      : io(io), acceptor(io), routes(std::move(r)) {}
  boost::asio::io_context& io;
  tcp::acceptor acceptor;
  HttpRoutes routes;
  std::uint64_t requests = 0;

  void accept() {
    acceptor.async_accept([self = shared_from_this()](auto ec, tcp::socket s) {
      if (ec == boost::asio::error::operation_aborted) return;
      if (!ec) self->serve(std::make_shared<tcp::socket>(std::move(s)));
      self->accept();
    });
  }

  void serve(std::shared_ptr<tcp::socket> s) {
    auto buf = std::make_shared<std::string>();
    auto chunk = std::make_shared<std::array<char, 2048>>();
    // A client that never finishes its request is cut off (slowloris).
    auto timer = std::make_shared<boost::asio::steady_timer>(io, std::chrono::seconds(5));
    timer->async_wait([s](auto ec) {
      if (!ec) {
        boost::system::error_code ignored;
        s->close(ignored);
      }
    });
    read(s, buf, chunk, timer);
  }

  void read(std::shared_ptr<tcp::socket> s, std::shared_ptr<std::string> buf,
            std::shared_ptr<std::array<char, 2048>> chunk,
            std::shared_ptr<boost::asio::steady_timer> timer) {
    s->async_read_some(boost::asio::buffer(*chunk), [self = shared_from_this(), s, buf, chunk,
                                                     timer](auto ec, std::size_t n) {
      if (ec) return;
      buf->append(chunk->data(), n);
      if (buf->find("\r\n\r\n") == std::string::npos) {
        if (buf->size() > kMaxHeader)
          return self->reply(s, timer,
                             response(400, "Bad Request", "text/plain", "request too large\n"));
        return self->read(s, buf, chunk, timer);
      }
      ++self->requests;
      auto line_end = buf->find("\r\n");
      std::string line = buf->substr(0, line_end);
      auto sp1 = line.find(' '), sp2 = line.rfind(' ');
      if (sp1 == std::string::npos || sp2 == sp1)
        return self->reply(s, timer,
                           response(400, "Bad Request", "text/plain", "malformed request line\n"));
      std::string method = line.substr(0, sp1), path = line.substr(sp1 + 1, sp2 - sp1 - 1);
      if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
      if (method != "GET" && method != "HEAD")
        return self->reply(s, timer,
                           response(405, "Method Not Allowed", "text/plain", "GET only\n"));
      if (path == "/metrics")
        return self->reply(s, timer,
                           response(200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                                    self->routes.metrics()));
      if (path == "/healthz") {
        bool ok = self->routes.healthy();
        return self->reply(s, timer,
                           ok ? response(200, "OK", "text/plain", "ok\n")
                              : response(503, "Service Unavailable", "text/plain", "not ready\n"));
      }
      self->reply(s, timer, response(404, "Not Found", "text/plain", "try /metrics or /healthz\n"));
    });
  }

  void reply(std::shared_ptr<tcp::socket> s, std::shared_ptr<boost::asio::steady_timer> timer,
             std::string text) {
    auto body = std::make_shared<std::string>(std::move(text));
    boost::asio::async_write(*s, boost::asio::buffer(*body), [s, body, timer](auto, std::size_t) {
      boost::system::error_code ignored;
      s->shutdown(tcp::socket::shutdown_both, ignored);
      s->close(ignored);
      timer->cancel();
    });
  }
};

Result<std::pair<std::string, std::uint16_t>> split_host_port(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return fail("bad_address", "'" + text + "' is not host:port");
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto ps = std::string_view(text).substr(colon + 1);
  auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
  if (ec != std::errc{} || p != ps.data() + ps.size() || port > 65535)
    return fail("bad_address", "'" + text + "' has no valid port");
  return std::pair{host, static_cast<std::uint16_t>(port)};
}

Result<std::unique_ptr<HttpServer>> HttpServer::create(boost::asio::io_context& io,
                                                       const std::string& listen,
                                                       HttpRoutes routes) {
  auto hp = split_host_port(listen);
  if (!hp) return fail("metrics_listen", "metrics.listen: " + hp.error().message);
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(hp->first, ec);
  if (ec) return fail("metrics_listen", "metrics.listen: '" + hp->first + "' is not an IP address");
  auto impl = std::make_shared<Impl>(io, std::move(routes));
  tcp::endpoint ep(addr, hp->second);
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(64, ec);
  if (ec) return fail("metrics_listen", "cannot listen on " + listen + ": " + ec.message());
  impl->accept();
  return std::unique_ptr<HttpServer>(new HttpServer(impl));
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() {
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
}
std::uint16_t HttpServer::port() const {
  return impl_->acceptor.local_endpoint().port();
}
std::uint64_t HttpServer::requests() const {
  return impl_->requests;
}

}  // namespace meshd::app
