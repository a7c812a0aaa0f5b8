// A deliberately tiny HTTP/1.1 server for the metrics listener: GET /metrics (Prometheus text
// format), GET /healthz and the read-only /ui (page and JSON API). One request per
// connection; anything else gets 404/405/400.
//
// /ui and everything under it is answered without credentials only on a loopback address
// (the request arrived at 127.0.0.0/8 or ::1: an SSH tunnel, `kubectl port-forward`, the node
// itself). Any other address needs the token of `metrics.ui_token_file`, as
// `Authorization: Bearer TOKEN` or as the password of HTTP Basic auth (what a browser sends
// after its login prompt); without it the answer is 401. /metrics and /healthz stay open for
// Prometheus and the kubelet. Tokens and Authorization headers are never logged.
#pragma once

#include "meshd/common/asio.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "meshd/common/result.hpp"

namespace meshd::app {

struct HttpRequest {
  std::string method;  // GET or HEAD
  std::string path;    // without the query
  std::string query;   // after '?', undecoded ("" if none)
};

struct HttpResponse {
  int code = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

struct HttpRoutes {
  std::function<std::string()> metrics;
  // Empty when ready; else why not (the 503 body of /healthz).
  std::function<std::string()> unready_reason;
  // GET /ui and /ui/...: called only for authorized requests. Null: 404.
  std::function<HttpResponse(const HttpRequest&)> ui;
  // The token /ui requires on non-loopback addresses; empty: /ui is loopback-only.
  std::string ui_token;
};

struct HttpStats {
  std::uint64_t ok = 0;            // 2xx answers
  std::uint64_t unauthorized = 0;  // 401: /ui without a valid token on a non-loopback address
  std::uint64_t not_found = 0;
  std::uint64_t bad_request = 0;  // malformed, too large, wrong method
  std::uint64_t timeouts = 0;     // cut off: no whole request within 5 s (slowloris)
  std::uint64_t refused = 0;      // refused: kMaxConnections already open
};

class HttpServer {
 public:
  // `listen` is "address:port". Error "metrics_listen" naming the address and the reason.
  static Result<std::unique_ptr<HttpServer>> create(boost::asio::io_context& io,
                                                    const std::string& listen, HttpRoutes routes);
  ~HttpServer();
  std::uint16_t port() const;
  std::uint64_t requests() const;
  HttpStats stats() const;

 private:
  struct Impl;
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// The answer to one request: `buf` holds what was received, `header_end` is the position of
// its "\r\n\r\n". `loopback`: it arrived at a loopback address. Pure apart from the routes.
HttpResponse route_request(const HttpRoutes& routes, const std::string& buf, std::size_t header_end,
                           bool loopback);

// "a.b.c.d:port" / "[v6]:port" / "host:port" -> (host, port). Error "bad_address".
Result<std::pair<std::string, std::uint16_t>> split_host_port(const std::string& text);

// Whether an Authorization header value carries `token` ("Bearer TOKEN", or "Basic" with
// base64 "user:TOKEN", any user). Constant time in the token's bytes. False if token is empty.
bool authorization_matches(std::string_view header, std::string_view token);

// The value of `key` in a query string ("ip=10.0.0.1&x=y"), percent- and '+'-decoded;
// nullopt if absent or badly encoded.
std::optional<std::string> query_param(std::string_view query, std::string_view key);

}  // namespace meshd::app
