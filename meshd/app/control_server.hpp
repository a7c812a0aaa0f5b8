// The control API: a Unix stream socket (mode 0600: the file mode is the access control)
// speaking length-prefixed ControlRequest / ControlResponse frames (proto/control.proto).
// One request per connection turn; `events --follow` keeps the connection and streams
// responses with more = true until the client goes away.
#pragma once

#include "meshd/common/asio.hpp"

#include <functional>
#include <memory>
#include <string>

#include "meshd/common/result.hpp"
#include "proto/control.pb.h"

namespace meshd::app {

struct ControlHooks {
  std::function<v1::ControlResponse(const v1::ControlRequest&)> handle;
  // For follow requests: register a sink that gets each new event line; returns an id.
  std::function<std::uint64_t(std::function<void(const std::string&)>)> subscribe;
  std::function<void(std::uint64_t)> unsubscribe;
};

struct ControlStats {
  std::uint64_t connections = 0;
  std::uint64_t requests = 0;
  std::uint64_t bad_requests = 0;  // undecodable or oversized frames
  // Connections closed because a request did not arrive whole within kRequestTimeout of the
  // connection or the previous answer (slowloris), and connections refused at kMaxSessions.
  std::uint64_t timeouts = 0;
  std::uint64_t refused = 0;
  std::uint64_t open = 0;  // sessions now
};

class ControlServer {
 public:
  // Creates the socket's directory if needed (0755), removes a stale socket file (refuses
  // if another daemon answers on it), binds, chmods 0600. Error "control_socket".
  static Result<std::unique_ptr<ControlServer>> create(boost::asio::io_context& io,
                                                       const std::string& path, ControlHooks hooks);
  ~ControlServer();
  const ControlStats& stats() const;
  void stop();

  struct Impl;  // public so the per-connection sessions in the .cpp can hold it

 private:
  explicit ControlServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace meshd::app
