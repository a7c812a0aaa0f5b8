#include "sensor/falco_endpoint.hpp"

#include <array>
#include <cctype>
#include <chrono>
#include <list>
#include <mutex>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "meshd/common/clock.hpp"

namespace meshd::sensor {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct FalcoEndpoint::State {
  asio::io_context& io;
  tcp::endpoint listen;
  FalcoEndpoint::Handler handler;
  FalcoEndpointOptions options;
  tcp::acceptor acceptor;
  std::atomic<bool> stopped{false};
  std::mutex mu;  // guards sessions (connections run on their own strands)
  std::list<std::weak_ptr<class Session>> sessions;
  std::atomic<std::size_t> open{0};
  struct {
    std::atomic<std::uint64_t> requests{0}, accepted{0}, mapped{0}, bad_alert{0}, bad_method{0},
        too_large{0}, unauthorized{0}, rejected_connections{0}, warnings{0};
  } stats;

  State(asio::io_context& io_, tcp::endpoint ep, FalcoEndpoint::Handler h, FalcoEndpointOptions o)
      : io(io_),
        listen(ep),
        handler(std::move(h)),
        options(std::move(o)),
        acceptor(asio::make_strand(io_)) {}
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<FalcoEndpoint::State> state)
      : stream_(std::move(socket)), state_(std::move(state)) {}
  ~Session() { --state_->open; }

  void start() { read(); }
  void close() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      self->stream_.close();
    });
  }

 private:
  // The header first: an unauthenticated caller is refused before its body is buffered.
  void read() {
    parser_.emplace();
    parser_->body_limit(state_->options.max_body_bytes);
    stream_.expires_after(std::chrono::seconds(state_->options.idle_timeout_s));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    // Closed, timed out or malformed HTTP: drop it. A Content-Length over the limit is
    // reported here, with the header complete.
    if ((ec && ec != http::error::body_limit) || state_->stopped) return;
    if (!state_->options.secret.empty()) {
      auto auth = parser_->get()[http::field::authorization];
      const char* why = nullptr;
      if (auth.empty())
        why = "no Authorization header";
      else if (!bearer_matches(std::string_view(auth.data(), auth.size()), state_->options.secret))
        why = "wrong secret";
      if (why) {
        ++state_->stats.unauthorized;
        if (state_->options.on_unauthorized) {
          beast::error_code ignored;
          state_->options.on_unauthorized(stream_.socket().remote_endpoint(ignored), why);
        }
        respond(http::status::unauthorized,
                error_body(std::string(why) + ": send Authorization: Bearer <secret>"), false,
                Linger::challenge);
        return;
      }
    }
    if (ec == http::error::body_limit) {
      ++state_->stats.too_large;
      respond(http::status::payload_too_large,
              error_body("body larger than " + std::to_string(state_->options.max_body_bytes) +
                         " bytes"),
              false, Linger::discard);
      return;
    }
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  // "Bearer SECRET" (scheme case-insensitive), compared in constant time.
  static bool bearer_matches(std::string_view header, std::string_view secret) {
    constexpr std::string_view scheme = "bearer ";
    if (header.size() < scheme.size()) return false;
    for (std::size_t i = 0; i < scheme.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return false;
    auto given = header.substr(scheme.size());
    while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
    while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
    unsigned char diff = given.size() == secret.size() ? 0 : 1;
    for (std::size_t i = 0; i < secret.size(); ++i)
      diff |= static_cast<unsigned char>((i < given.size() ? given[i] : 0) ^ secret[i]);
    return diff == 0;
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      ++state_->stats.too_large;
      respond(http::status::payload_too_large,
              error_body("body larger than " + std::to_string(state_->options.max_body_bytes) +
                         " bytes"),
              false);
      return;
    }
    if (ec || state_->stopped) return;  // closed, timed out or malformed HTTP: drop the connection
    auto& req = parser_->get();
    ++state_->stats.requests;
    if (req.method() != http::verb::post) {
      ++state_->stats.bad_method;
      respond(http::status::method_not_allowed, error_body("only POST is accepted"),
              req.keep_alive());
      return;
    }
    auto alert = parse_falco_alert(req.body());
    if (!alert) {
      ++state_->stats.bad_alert;
      respond(http::status::bad_request, error_body(alert.error().message), req.keep_alive());
      return;
    }
    ++state_->stats.accepted;
    state_->stats.warnings += alert->warnings.size();
    const TimeMs now = wall_now_ms();
    auto detection = falco_to_detection(*alert, now, state_->options.mapping);
    if (detection) ++state_->stats.mapped;
    nlohmann::json out{{"mapped", detection.has_value()}};
    if (detection) {
      out["prefix"] = detection->prefix.to_string();
      out["direction"] = std::string(to_string(detection->direction));
    }
    if (!alert->warnings.empty()) out["warnings"] = alert->warnings;
    if (state_->handler) state_->handler(*alert, detection);
    respond(http::status::ok, out.dump(), req.keep_alive());
  }

  static std::string error_body(const std::string& reason) {
    return nlohmann::json{{"error", reason}}.dump();
  }

  // After a refusal before the body was read: `discard` drains the unread body, `challenge`
  // also asks for credentials (WWW-Authenticate).
  enum class Linger { no, discard, challenge };
  void respond(http::status status, std::string body, bool keep_alive, Linger linger = Linger::no) {
    const bool challenge = linger == Linger::challenge;
    const bool drain = linger != Linger::no;
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    res->set(http::field::server, "meshd");
    if (challenge) res->set(http::field::www_authenticate, "Bearer realm=\"meshd-falco\"");
    res->set(http::field::content_type, "application/json");
    res->keep_alive(keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
    stream_.expires_after(std::chrono::seconds(state_->options.idle_timeout_s));
    http::async_write(
        stream_, *res,
        [self = shared_from_this(), res, keep_alive, drain](beast::error_code ec, std::size_t) {
          if (!ec && drain && !self->state_->stopped) {
            // The refused request's body is still unread: closing now would reset the
            // connection and could destroy the 401 before the client reads it. Half-close,
            // then discard (never store) what the client still sends, up to max_body_bytes.
            beast::error_code ignored;
            self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
            self->discard(0);
            return;
          }
          if (ec || !keep_alive || self->state_->stopped) {
            beast::error_code ignored;
            self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
            return;
          }
          self->read();
        });
  }

  void discard(std::size_t so_far) {
    if (so_far > state_->options.max_body_bytes || state_->stopped) return;
    stream_.async_read_some(asio::buffer(scratch_), [self = shared_from_this(), so_far](
                                                        beast::error_code ec, std::size_t n) {
      if (!ec) self->discard(so_far + n);
    });
  }

  beast::tcp_stream stream_;
  std::array<char, 4096> scratch_{};
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<FalcoEndpoint::State> state_;
};

namespace {

void do_accept(const std::shared_ptr<FalcoEndpoint::State>& st) {
  st->acceptor.async_accept(
      asio::make_strand(st->io), [st](beast::error_code ec, tcp::socket socket) {
        if (st->stopped || !st->acceptor.is_open()) return;
        if (!ec) {
          if (st->open >= st->options.max_connections) {
            ++st->stats.rejected_connections;
            beast::error_code ignored;
            socket.close(ignored);
          } else {
            ++st->open;
            auto session = std::make_shared<Session>(std::move(socket), st);
            {
              std::lock_guard lock(st->mu);
              std::erase_if(st->sessions, [](const auto& w) { return w.expired(); });
              st->sessions.push_back(session);
            }
            session->start();
          }
        }
        do_accept(st);
      });
}

}  // namespace

FalcoEndpoint::FalcoEndpoint(asio::io_context& io, tcp::endpoint listen, Handler handler,
                             FalcoEndpointOptions options)
    : state_(std::make_shared<State>(io, listen, std::move(handler), std::move(options))) {}

FalcoEndpoint::~FalcoEndpoint() {
  stop();
}

Result<void> FalcoEndpoint::start() {
  beast::error_code ec;
  auto& acc = state_->acceptor;
  const std::string where =
      state_->listen.address().to_string() + ":" + std::to_string(state_->listen.port());
  acc.open(state_->listen.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(state_->listen, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    acc.close(ignored);
    return fail("listen_failed", "Falco endpoint cannot listen on " + where + ": " + ec.message());
  }
  state_->stopped = false;
  do_accept(state_);
  return {};
}

void FalcoEndpoint::stop() {
  if (state_->stopped.exchange(true)) return;
  asio::post(state_->acceptor.get_executor(), [st = state_] {
    beast::error_code ignored;
    st->acceptor.close(ignored);
  });
  std::lock_guard lock(state_->mu);
  for (auto& w : state_->sessions)
    if (auto s = w.lock()) s->close();
  state_->sessions.clear();
}

tcp::endpoint FalcoEndpoint::local_endpoint() const {
  beast::error_code ec;
  auto ep = state_->acceptor.local_endpoint(ec);
  return ec ? tcp::endpoint{} : ep;
}

FalcoEndpointStats FalcoEndpoint::stats() const {
  const auto& s = state_->stats;
  return FalcoEndpointStats{s.requests,   s.accepted,  s.mapped,       s.bad_alert,
                            s.bad_method, s.too_large, s.unauthorized, s.rejected_connections,
                            s.warnings};
}

}  // namespace meshd::sensor
