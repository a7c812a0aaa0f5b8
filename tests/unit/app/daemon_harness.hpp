// In-process harness for the daemon's unit tests: a real meshd (dryrun enforcement, temp data
// dir, temp control socket, no peers, no metrics listener) on its own io thread, and
// meshctl's own command code run in-process against it over the real Unix socket.
//
// Synchronisation is by request/response only: Daemon::create() has bound every socket before
// it returns, and each control request is answered on the daemon's io thread after the work
// it asked for is done. The daemon is stopped with SIGTERM, its documented shutdown path.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "meshd/app/config.hpp"
#include "meshd/app/daemon.hpp"
#include "meshd/ctl/ctl.hpp"
#include "sensor/events.hpp"
#include "tests/support/temp_dir.hpp"

namespace meshd::test {

namespace fs = std::filesystem;
using nlohmann::json;

using meshd::testing::TempDir;

// Redirects file descriptor 1 (printf and std::cout alike) into a temp file while alive.
// The daemon logs to stderr, so only meshctl's output is captured.
class StdoutCapture {
 public:
  StdoutCapture() {
    std::cout.flush();
    std::fflush(stdout);
    file_ = std::tmpfile();
    saved_ = ::dup(1);
    ::dup2(::fileno(file_), 1);
  }
  std::string finish() {
    std::cout.flush();
    std::fflush(stdout);
    ::dup2(saved_, 1);
    ::close(saved_);
    std::string out;
    std::rewind(file_);
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, file_)) > 0;) out.append(buf, n);
    std::fclose(file_);
    return out;
  }

 private:
  std::FILE* file_ = nullptr;
  int saved_ = -1;
};

struct CtlRun {
  int exit_code = 0;
  std::string out;  // stdout
  std::string err;  // the one stderr line meshctl prints on failure ("meshctl: ...")
  json parsed() const {
    json j = json::parse(out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << out;
    return j;
  }
};

// meshctl's main(), in-process: the same CLI11 app, the same command registrations, the same
// exit codes (1 failed command, 2 usage error) and one-line error.
inline CtlRun meshctl(std::vector<std::string> args) {
  ctl::Context ctx;
  CLI::App app{"meshctl"};
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();
  app.add_option("--socket", ctx.socket, "control API Unix socket");
  ctl::register_keys_commands(app, ctx);
  ctl::register_ca_commands(app, ctx);
  ctl::register_control_commands(app, ctx);
  args.insert(args.begin(), "meshctl");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  CtlRun r;
  StdoutCapture capture;
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
    if (!ctx.result) {
      r.exit_code = 1;
      r.err = "meshctl: " + ctx.result.error().message;
    }
  } catch (const CLI::ParseError& e) {
    r.exit_code = 2;
    r.err = std::string("meshctl: ") + e.what();
  }
  r.out = capture.finish();
  return r;
}

// Keys and certs made by meshctl's own commands: a fleet CA, this node, an operator of that
// CA and an operator certified by another CA.
struct Identities {
  explicit Identities(const TempDir& dir) : d(dir) {
    run({"ca", "init", "--out", d / "ca"});
    run({"keys", "gen", "--out", d / "keys", "--name", "node-1"});
    run({"ca", "sign", "--ca", d / "ca", "--pub", d / "keys/node-1.pub", "--name", "node-1",
         "--domain", "zone-a", "--out", d / "keys/node-1.cert"});
    run({"keys", "gen", "--out", d / "keys", "--name", "alice"});
    run({"ca", "sign", "--ca", d / "ca", "--pub", d / "keys/alice.pub", "--name", "alice",
         "--domain", "ops", "--role", "operator", "--out", d / "keys/alice.cert"});
    run({"ca", "init", "--out", d / "other-ca"});
    run({"keys", "gen", "--out", d / "keys", "--name", "mallory"});
    run({"ca", "sign", "--ca", d / "other-ca", "--pub", d / "keys/mallory.pub", "--name", "mallory",
         "--domain", "ops", "--role", "operator", "--out", d / "keys/mallory.cert"});
  }
  static void run(std::vector<std::string> args) {
    auto r = meshctl(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::string node_key() const { return d / "keys/node-1.key"; }
  std::string node_cert() const { return d / "keys/node-1.cert"; }
  std::string ca_pub() const { return d / "ca/ca.pub"; }
  const TempDir& d;
};

// What a test changes in the base config beyond `extra_yaml` (appended at the end, so it
// cannot repeat the sections below), and a connect-event source of its own.
struct DaemonSetup {
  std::string mesh_peers = "[]";  // mesh.peers, as YAML
  std::string sensor_yaml;        // extra lines of the sensor section, each indented by 2
  std::unique_ptr<sensor::EventSource> events;  // Daemon::create's `events` (null: none)
};

// The daemons' default logger (stderr, warn) is made once per process, before the first daemon
// starts; a test that adds a sink to it calls this first, so its sink is not replaced.
inline void ensure_test_logger() {
  static bool logging = [] {
    spdlog::set_default_logger(spdlog::stderr_color_mt("meshd-test"));
    spdlog::set_level(spdlog::level::warn);
    return true;
  }();
  (void)logging;
}

// One daemon on its own thread. `extra_yaml` is appended to the base config.
class DaemonUnderTest {
 public:
  DaemonUnderTest(const TempDir& dir, const Identities& ids, const std::string& extra_yaml = "")
      : DaemonUnderTest(dir, ids, extra_yaml, DaemonSetup{}) {}
  DaemonUnderTest(const TempDir& dir, const Identities& ids, const std::string& extra_yaml,
                  DaemonSetup setup)
      : socket_(dir / "ctl.sock") {
    ensure_test_logger();
    const std::string config_path = dir / "meshd.yaml";
    std::ofstream(config_path) << "node:\n"
                               << "  name: node-1\n"
                               << "  key: " << ids.node_key() << "\n"
                               << "  cert: " << ids.node_cert() << "\n"
                               << "  ca: " << ids.ca_pub() << "\n"
                               << "  data_dir: " << dir.file("data") << "\n"
                               << "mesh:\n  listen: \"\"\n  peers: " << setup.mesh_peers << "\n"
                               << "control:\n  socket: " << socket_ << "\n"
                               << "metrics:\n  listen: \"\"\n"
                               << "enforcement:\n  backend: dryrun\n"
                               << "sensor:\n  enabled: false\n"
                               << setup.sensor_yaml << extra_yaml;
    auto config = app::load_config_file(config_path);
    if (!config) throw std::runtime_error(config.error().message);
    auto d = app::Daemon::create(std::move(*config), config_path, std::move(setup.events));
    if (!d) throw std::runtime_error(d.error().code + ": " + d.error().message);
    daemon_ = std::move(*d);
    thread_ = std::thread([this] { daemon_->run(); });
  }
  ~DaemonUnderTest() { stop(); }

  // SIGTERM: the daemon's signal_set takes it on the io thread and shuts down cleanly.
  void stop() {
    if (!thread_.joinable()) return;
    ::kill(::getpid(), SIGTERM);
    thread_.join();
  }
  // Stops and destroys the daemon: connections it still holds (events --follow) are closed.
  void destroy() {
    stop();
    daemon_.reset();
  }
  // Only after stop(): the daemon's state belongs to its io thread while it runs.
  app::Daemon& stopped_daemon() {
    EXPECT_FALSE(thread_.joinable());
    return *daemon_;
  }
  const std::string& socket() const { return socket_; }

  CtlRun ctl(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--socket", socket_});
    return meshctl(std::move(args));
  }
  // `meshctl ... --json`, parsed; fails the test if the command fails.
  json ctl_json(std::vector<std::string> args) const {
    args.push_back("--json");
    auto r = ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.parsed();
  }

 private:
  std::string socket_;
  std::unique_ptr<app::Daemon> daemon_;
  std::thread thread_;
};

// The entry of a `blocks` array for `prefix` (as the daemon prints it: "203.0.113.7" for a host,
// "2001:db8::/48" for a network), or nullopt.
inline std::optional<json> find_prefix(const json& arr, const std::string& prefix) {
  for (const auto& e : arr)
    if (e.value("prefix", "") == prefix) return e;
  return std::nullopt;
}

}  // namespace meshd::test
