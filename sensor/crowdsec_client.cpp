#include "sensor/crowdsec_client.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

namespace meshd::sensor {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct CrowdsecClient::Op : std::enable_shared_from_this<CrowdsecClient::Op> {
  Op(asio::io_context& io, const CrowdsecClientOptions& o, Handler h)
      : options(o), resolver(io), stream(io), deadline(io), handler(std::move(h)) {}

  CrowdsecClientOptions options;
  tcp::resolver resolver;
  beast::tcp_stream stream;
  asio::steady_timer deadline;
  Handler handler;
  http::request<http::empty_body> request;
  std::optional<http::response_parser<http::string_body>> parser;
  beast::flat_buffer buffer;
  bool done = false;
  bool timed_out = false;

  void finish(Result<std::string> r) {
    if (done) return;
    done = true;
    deadline.cancel();
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.close();
    auto h = std::move(handler);
    if (h) h(std::move(r));
  }

  // The error of a failed step: a timeout when the deadline fired, else `code` with ec.
  void failed(const char* code, const char* step, const beast::error_code& ec) {
    const std::string where = options.url.host + ":" + std::to_string(options.url.port);
    if (timed_out)
      finish(fail("timeout", "CrowdSec LAPI " + where + ": no answer within " +
                                 std::to_string(options.timeout.count()) + " ms (" + step + ")"));
    else
      finish(fail(code, "CrowdSec LAPI " + where + ": " + step + ": " + ec.message()));
  }

  void start(const std::string& target, const std::string& api_key) {
    request = {http::verb::get, target, 11};
    request.set(http::field::host, options.url.host);
    request.set(http::field::user_agent, options.user_agent);
    request.set(http::field::accept, "application/json");
    request.set("X-Api-Key", api_key);
    request.keep_alive(false);
    deadline.expires_after(options.timeout);
    deadline.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->done) return;
      self->timed_out = true;
      self->resolver.cancel();
      self->stream.cancel();
    });
    resolver.async_resolve(
        options.url.host, std::to_string(options.url.port),
        [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
          if (self->done) return;
          if (ec) return self->failed("unreachable", "resolve", ec);
          self->stream.async_connect(results, [self](beast::error_code ec2, const tcp::endpoint&) {
            if (self->done) return;
            if (ec2) return self->failed("unreachable", "connect", ec2);
            http::async_write(self->stream, self->request,
                              [self](beast::error_code ec3, std::size_t) {
                                if (self->done) return;
                                if (ec3) return self->failed("io_error", "send request", ec3);
                                self->read();
                              });
          });
        });
  }

  void read() {
    parser.emplace();
    parser->body_limit(options.max_body_bytes);
    http::async_read(
        stream, buffer, *parser, [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (self->done) return;
          if (ec == http::error::body_limit)
            return self->finish(fail("too_large", "CrowdSec LAPI answer larger than " +
                                                      std::to_string(self->options.max_body_bytes) +
                                                      " bytes"));
          if (ec) return self->failed("io_error", "read answer", ec);
          auto& res = self->parser->get();
          const unsigned status = res.result_int();
          if (status == 200) return self->finish(std::move(res.body()));
          std::string body = res.body().substr(0, 200);
          for (auto& c : body)
            if (c == '\n' || c == '\r') c = ' ';
          const std::string what = "CrowdSec LAPI answered HTTP " + std::to_string(status) +
                                   (body.empty() ? "" : " (" + body + ")");
          if (status == 401 || status == 403)
            return self->finish(
                fail("unauthorized", what + ": is the API key valid? (cscli bouncers add)"));
          self->finish(fail("http_error", what));
        });
  }
};

CrowdsecClient::CrowdsecClient(asio::io_context& io, CrowdsecClientOptions options)
    : io_(io), options_(std::move(options)) {}

CrowdsecClient::~CrowdsecClient() {
  stop();
}

bool CrowdsecClient::busy() const {
  return current_ && !current_->done;
}

void CrowdsecClient::get_stream(bool startup, const std::string& api_key, Handler handler) {
  stop();
  current_ = std::make_shared<Op>(io_, options_, std::move(handler));
  const std::string target =
      options_.url.base_path + "/v1/decisions/stream" + (startup ? "?startup=true" : "");
  current_->start(target, api_key);
}

void CrowdsecClient::stop() {
  if (!current_) return;
  if (!current_->done) {
    current_->handler = nullptr;
    current_->finish(fail("cancelled", "request cancelled"));
  }
  current_.reset();
}

}  // namespace meshd::sensor
