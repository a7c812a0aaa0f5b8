// HTTP endpoint for external alerts: accepts Falco alerts as falcosidekick's webhook output
// POSTs them (JSON body, any path), parses them with parse_falco_alert and hands each one,
// with its detection when it maps to a destination, to the daemon's callback.
//
// Callers authenticate with a shared secret: when `secret` is set, every request must carry
// `Authorization: Bearer SECRET` (falcosidekick's webhook.customheaders sends it). The header
// is checked before the body is read; a missing or wrong one gets 401 and the connection is
// closed. Anything that reaches the endpoint could otherwise make the node sign claims.
//
// Responses: 200 {"mapped":bool,...} for an accepted alert, 400 {"error":"..."} for a body
// that is not a valid alert (reason included), 405 for other methods, 413 for bodies over
// `max_body_bytes`. Runs on the caller's io_context; the callback is invoked on it. With a
// multi-threaded io_context every connection still runs on its own strand.
#pragma once

#include "meshd/common/asio.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "meshd/common/result.hpp"
#include "sensor/detectors/falco.hpp"

namespace meshd::sensor {

struct FalcoEndpointOptions {
  std::string secret;  // empty: no authentication (tests only; meshd's config requires one)
  // Called (on the connection's strand) for each refused request: the peer and the reason
  // ("no Authorization header", "wrong secret"). Never given the header's contents.
  std::function<void(const boost::asio::ip::tcp::endpoint& from, std::string_view why)>
      on_unauthorized;
  std::size_t max_body_bytes = 1 << 20;
  int idle_timeout_s = 30;  // per-connection read/write timeout
  std::size_t max_connections = 64;
  FalcoMappingOptions mapping;
};

struct FalcoEndpointStats {
  std::uint64_t requests = 0;
  std::uint64_t accepted = 0;              // 200
  std::uint64_t mapped = 0;                // accepted alerts that produced a detection
  std::uint64_t bad_alert = 0;             // 400 (invalid JSON or fields)
  std::uint64_t bad_method = 0;            // 405
  std::uint64_t too_large = 0;             // 413
  std::uint64_t unauthorized = 0;          // 401 (no or wrong secret)
  std::uint64_t rejected_connections = 0;  // over max_connections
  std::uint64_t warnings = 0;              // unusable optional fields in accepted alerts
};

class FalcoEndpoint {
 public:
  using Handler =
      std::function<void(const FalcoAlert& alert, const std::optional<Detection>& detection)>;

  FalcoEndpoint(boost::asio::io_context& io, boost::asio::ip::tcp::endpoint listen, Handler handler,
                FalcoEndpointOptions options = {});
  ~FalcoEndpoint();
  FalcoEndpoint(const FalcoEndpoint&) = delete;
  FalcoEndpoint& operator=(const FalcoEndpoint&) = delete;

  // Binds and starts accepting. Error names the address and the reason (e.g. in use).
  Result<void> start();
  // Stops accepting and closes open connections; the handler is not called afterwards.
  void stop();
  // The bound address (useful with port 0).
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  FalcoEndpointStats stats() const;

  struct State;  // shared with connections, which may outlive a stop()

 private:
  std::shared_ptr<State> state_;
};

}  // namespace meshd::sensor
