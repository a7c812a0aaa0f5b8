// A deliberately tiny HTTP/1.1 server for GET /metrics (Prometheus text format) and
// GET /healthz. One request per connection; anything else gets 404/405/400.
#pragma once

#include <utility>  // before Asio (Boost 1.74)

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

#include "meshd/common/result.hpp"

namespace meshd::app {

struct HttpRoutes {
  std::function<std::string()> metrics;
  std::function<bool()> healthy;
};

class HttpServer {
 public:
  // `listen` is "address:port". Error "metrics_listen" naming the address and the reason.
  static Result<std::unique_ptr<HttpServer>> create(boost::asio::io_context& io,
                                                    const std::string& listen, HttpRoutes routes);
  ~HttpServer();
  std::uint16_t port() const;
  std::uint64_t requests() const;

 private:
  struct Impl;
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// "a.b.c.d:port" / "[v6]:port" / "host:port" -> (host, port). Error "bad_address".
Result<std::pair<std::string, std::uint16_t>> split_host_port(const std::string& text);

}  // namespace meshd::app
