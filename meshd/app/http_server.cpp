#include "meshd/app/http_server.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <cctype>
#include <charconv>

#include "meshd/common/log_limit.hpp"

namespace meshd::app {
namespace {

using boost::asio::ip::tcp;
constexpr std::size_t kMaxHeader = 8192;
constexpr std::size_t kMaxConnections = 128;  // more at once are refused (slowloris)

const char* status_text(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

std::string serialize(const HttpResponse& r, bool head) {
  std::string out = "HTTP/1.1 " + std::to_string(r.code) + " " + status_text(r.code) +
                    "\r\nContent-Type: " + r.content_type +
                    "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  out += "Connection: close\r\n\r\n";
  if (!head) out += r.body;
  return out;
}

HttpResponse text(int code, std::string body) {
  HttpResponse r;
  r.code = code;
  r.body = std::move(body);
  return r;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

// The value of header `name` in the header block (after the request line), trimmed.
std::string header_value(std::string_view block, std::string_view name) {
  std::size_t pos = 0;
  while (pos < block.size()) {
    auto end = block.find("\r\n", pos);
    if (end == std::string_view::npos) end = block.size();
    auto line = block.substr(pos, end - pos);
    auto colon = line.find(':');
    if (colon != std::string_view::npos && iequals(line.substr(0, colon), name)) {
      auto v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      return std::string(v);
    }
    pos = end + 2;
  }
  return {};
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::optional<std::string> base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    buf = (buf << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buf >> bits) & 0xff);
    }
  }
  return out;
}

bool is_loopback(const boost::asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6()).is_loopback();
  return a.is_loopback();
}

}  // namespace

bool authorization_matches(std::string_view header, std::string_view token) {
  if (token.empty()) return false;
  auto sp = header.find(' ');
  if (sp == std::string_view::npos) return false;
  auto scheme = header.substr(0, sp);
  auto cred = header.substr(sp + 1);
  while (!cred.empty() && cred.front() == ' ') cred.remove_prefix(1);
  if (iequals(scheme, "Bearer")) return constant_time_equal(cred, token);
  if (iequals(scheme, "Basic")) {
    auto decoded = base64_decode(cred);
    if (!decoded) return false;
    auto colon = decoded->find(':');
    if (colon == std::string::npos) return false;
    return constant_time_equal(std::string_view(*decoded).substr(colon + 1), token);
  }
  return false;
}

std::optional<std::string> query_param(std::string_view query, std::string_view key) {
  std::size_t pos = 0;
  while (pos <= query.size()) {
    auto end = query.find('&', pos);
    if (end == std::string_view::npos) end = query.size();
    auto pair = query.substr(pos, end - pos);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == key) {
      std::string out;
      auto v = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '+') {
          out += ' ';
        } else if (v[i] == '%') {
          unsigned x = 0;
          if (i + 2 >= v.size()) return std::nullopt;
          auto [p, ec] = std::from_chars(v.data() + i + 1, v.data() + i + 3, x, 16);
          if (ec != std::errc{} || p != v.data() + i + 3) return std::nullopt;
          out += static_cast<char>(x);
          i += 2;
        } else {
          out += v[i];
        }
      }
      return out;
    }
    pos = end + 1;
  }
  return std::nullopt;
}

HttpResponse route_request(const HttpRoutes& routes, const std::string& buf, std::size_t header_end,
                           bool loopback) {
  auto line_end = buf.find("\r\n");
  std::string line = buf.substr(0, line_end);
  auto sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1) return text(400, "malformed request line\n");
  HttpRequest req;
  req.method = line.substr(0, sp1);
  req.path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (auto q = req.path.find('?'); q != std::string::npos) {
    req.query = req.path.substr(q + 1);
    req.path.resize(q);
  }
  if (req.method != "GET" && req.method != "HEAD") return text(405, "GET only\n");
  if (req.path == "/metrics") {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = routes.metrics();
    return r;
  }
  if (req.path == "/healthz") {
    const auto why = routes.unready_reason();
    return why.empty() ? text(200, "ok\n") : text(503, "not ready: " + why + "\n");
  }
  if (routes.ui && (req.path == "/ui" || req.path.starts_with("/ui/"))) {
    if (!loopback) {
      std::string_view block(buf.data() + line_end, header_end - line_end + 2);
      if (!authorization_matches(header_value(block, "Authorization"), routes.ui_token)) {
        auto r = text(401, routes.ui_token.empty()
                               ? "/ui answers on a loopback address only: set "
                                 "metrics.ui_token_file to open it on this address\n"
                               : "/ui needs the token of metrics.ui_token_file: "
                                 "Authorization: Bearer TOKEN (or Basic auth, the token as "
                                 "password)\n");
        r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"meshd\", charset=\"UTF-8\"");
        return r;
      }
    }
    return routes.ui(req);
  }
  return text(404, "try /metrics, /healthz or /ui\n");
}

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  explicit Impl(boost::asio::io_context& io, HttpRoutes r)
      : io(io), acceptor(io), routes(std::move(r)) {}
  boost::asio::io_context& io;
  tcp::acceptor acceptor;
  HttpRoutes routes;
  std::uint64_t requests = 0;
  HttpStats stats;
  std::size_t open = 0;
  LogLimit log_limit;  // a flood of slow or surplus clients must not flood the log

  void warn(const std::string& what) {
    if (auto left_out = log_limit.admit())
      spdlog::warn("metrics http: {}{}", what, LogLimit::and_more(*left_out));
  }

  static std::string peer_of(const tcp::socket& s) {
    boost::system::error_code ec;
    const auto ep = s.remote_endpoint(ec);
    return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void accept() {
    acceptor.async_accept([self = shared_from_this()](auto ec, tcp::socket s) {
      if (ec == boost::asio::error::operation_aborted) return;
      if (!ec) {
        if (self->open >= kMaxConnections) {
          ++self->stats.refused;
          self->warn("refused " + peer_of(s) + ": " + std::to_string(kMaxConnections) +
                     " connections open");
          boost::system::error_code ignored;
          s.close(ignored);
        } else {
          self->serve(std::make_shared<tcp::socket>(std::move(s)));
        }
      }
      self->accept();
    });
  }

  void serve(std::shared_ptr<tcp::socket> s) {
    auto buf = std::make_shared<std::string>();
    auto chunk = std::make_shared<std::array<char, 2048>>();
    ++open;
    // Closes the count when the last handler holding it is gone.
    auto slot =
        std::shared_ptr<void>(nullptr, [self = shared_from_this()](void*) { --self->open; });
    // A client that never finishes its request is cut off (slowloris).
    auto timer = std::make_shared<boost::asio::steady_timer>(io, std::chrono::seconds(5));
    timer->async_wait([s, slot, self = shared_from_this()](auto ec) {
      if (!ec && s->is_open()) {
        ++self->stats.timeouts;
        self->warn("cut off slow client " + peer_of(*s) + ": no whole request within 5 s");
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
      if (ec) {
        timer->cancel();  // gone: its slot is free now, not after the timeout
        return;
      }
      buf->append(chunk->data(), n);
      auto header_end = buf->find("\r\n\r\n");
      if (header_end == std::string::npos) {
        if (buf->size() > kMaxHeader)
          return self->reply(s, timer, text(400, "request too large\n"), false);
        return self->read(s, buf, chunk, timer);
      }
      ++self->requests;
      boost::system::error_code lec;
      auto local = s->local_endpoint(lec);
      const bool loopback = !lec && is_loopback(local.address());
      self->reply(s, timer, self->route(*buf, header_end, loopback), buf->starts_with("HEAD "));
    });
  }

  HttpResponse route(const std::string& buf, std::size_t header_end, bool loopback) {
    return route_request(routes, buf, header_end, loopback);
  }

  void reply(std::shared_ptr<tcp::socket> s, std::shared_ptr<boost::asio::steady_timer> timer,
             const HttpResponse& r, bool head) {
    if (r.code >= 200 && r.code < 300)
      ++stats.ok;
    else if (r.code == 401)
      ++stats.unauthorized;
    else if (r.code == 404)
      ++stats.not_found;
    else if (r.code == 400 || r.code == 405)
      ++stats.bad_request;
    auto body = std::make_shared<std::string>(serialize(r, head));
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
HttpStats HttpServer::stats() const {
  return impl_->stats;
}

}  // namespace meshd::app
