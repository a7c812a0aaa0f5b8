// HTTP client of the CrowdSec Local API's bouncer stream (GET /v1/decisions/stream, header
// X-Api-Key). Boost.Beast on the caller's io_context: resolve, connect, write and read are
// asynchronous, each bounded by `timeout`, so the daemon's event loop never waits on the LAPI.
// One request at a time; the handler runs on the io_context. Parsing is elsewhere
// (sensor/detectors/crowdsec.hpp): this only moves bytes and classifies failures.
#pragma once

#include "meshd/common/asio.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "meshd/common/result.hpp"
#include "sensor/detectors/crowdsec.hpp"

namespace meshd::sensor {

struct CrowdsecClientOptions {
  LapiUrl url;
  std::chrono::milliseconds timeout{10'000};  // whole request: resolve to last body byte
  std::size_t max_body_bytes = 256u << 20;    // a startup answer lists every deleted decision
  std::string user_agent = "meshd-crowdsec-bouncer";
};

// Failure codes: "unreachable" (resolve/connect), "timeout", "unauthorized" (401/403),
// "http_error" (other non-200 status), "too_large" (body over max_body_bytes), "io_error"
// (connection lost mid-answer), "cancelled".
class CrowdsecClient {
 public:
  using Handler = std::function<void(Result<std::string> body)>;

  CrowdsecClient(boost::asio::io_context& io, CrowdsecClientOptions options);
  ~CrowdsecClient();
  CrowdsecClient(const CrowdsecClient&) = delete;
  CrowdsecClient& operator=(const CrowdsecClient&) = delete;

  // Starts one GET of the stream (startup=true when `startup`). The handler is called exactly
  // once, unless stop() came first. Calling it while a request runs is a programming error.
  void get_stream(bool startup, const std::string& api_key, Handler handler);
  bool busy() const;
  // Aborts the running request; its handler is not called.
  void stop();

  struct Op;

 private:
  boost::asio::io_context& io_;
  CrowdsecClientOptions options_;
  std::shared_ptr<Op> current_;
};

}  // namespace meshd::sensor
