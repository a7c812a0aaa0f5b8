// The meshd daemon: one io_context thread drives the sans-I/O core (meshd/core + trust/)
// with real time, real peers (meshd/net), real enforcement (sensor/ enforcers), durable state
// (Store), the connect sensor and detectors, the control API and the metrics page.
//
// Data flow:
//   transport frame -> decode_message -> core::Node::on_message -> Actions
//   sensor event / control "block add" -> signed Claim -> Node::on_local_event -> Actions
//   Actions -> sends (transport), block changes (Enforcer), persist (Store), bans, proofs.
// Every action list is applied in order before the next input is taken.
#pragma once

#include "meshd/common/asio.hpp"

#include <deque>
#include <memory>
#include <string>

#include "meshd/app/config.hpp"
#include "meshd/common/result.hpp"
#include "meshd/common/time.hpp"
#include "proto/control.pb.h"

namespace meshd::sensor {
class EventSource;
}  // namespace meshd::sensor

namespace meshd::app {

class Daemon {
 public:
  // Loads identity and store, builds every component, binds sockets. Errors are start-up
  // errors naming what failed (bad key, corrupt store, port in use, ...).
  static Result<std::unique_ptr<Daemon>> create(AppConfig config, std::string config_path);
  // The same with connect events from `events` instead of the backend's sensor (tests run the
  // sensor -> usage statistics -> trust path this way with the dryrun backend). Polled on the
  // daemon's io thread; a caller feeding it from another thread must make it thread-safe.
  static Result<std::unique_ptr<Daemon>> create(AppConfig config, std::string config_path,
                                                std::unique_ptr<sensor::EventSource> events);
  ~Daemon();

  // Runs until SIGTERM/SIGINT (clean shutdown: state flushed; the kernel keeps enforcing the
  // current blocks until they expire: programs stay attached, maps pinned, and the next start
  // takes them over; `meshd --detach` removes them). SIGHUP reloads policy and protected
  // prefixes from the config file.
  int run();

  // One control request -> one response (the control server calls this; streaming
  // `events --follow` is handled by the server with subscribe_events).
  v1::ControlResponse handle(const v1::ControlRequest& request);

  // Event log for `meshctl events`: JSON lines. The callback gets each new line.
  using EventSink = std::function<void(const std::string& json_line)>;
  std::uint64_t subscribe_events(EventSink sink);
  void unsubscribe_events(std::uint64_t id);
  std::deque<std::string> recent_events(std::size_t limit) const;

  std::string metrics_text() const;
  // Empty when ready (/healthz 200); else why not: stopping, not started, or asked to
  // enforce (`backend: auto`) with no backend that can.
  std::string unready_reason() const;

  struct Impl;

 private:
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshd::app
