// meshctl's command plumbing. main.cpp builds the CLI11 app and calls each
// register_*_commands(); a subcommand's callback does its work and stores the outcome in
// Context::result. main() prints a failed result as ONE line "meshctl: <message>" on
// stderr and exits 1 (2 for usage errors), so every command fails the same way.
//
// Adding control-API commands: write meshd/ctl/<area>_commands.cpp with a
// register_<area>_commands(CLI::App&, Context&) declared here, call it from main.cpp, and
// add the file to meshd/ctl/CMakeLists.txt. Use ctx.socket for the daemon's socket path.
#pragma once

#include <CLI/CLI.hpp>

#include <filesystem>
#include <string>

#include "meshd/common/clock.hpp"
#include "meshd/common/result.hpp"
#include "meshd/common/time.hpp"

namespace meshd::ctl {

struct Context {
  std::string socket = "/run/meshd/meshd.sock";  // --socket: control API Unix socket
  Result<void> result;                           // outcome of the command that ran
};

void register_keys_commands(CLI::App& app, Context& ctx);
void register_ca_commands(CLI::App& app, Context& ctx);
void register_cert_commands(CLI::App& app, Context& ctx);
// meshctl enroll keygen|pub|install|status|wait: per-node keys on Kubernetes (deploy/kubernetes).
void register_enroll_commands(CLI::App& app, Context& ctx);
// status, peers, blocks, trust, explain, events, block add|del, decision (control socket).
void register_control_commands(CLI::App& app, Context& ctx);

// "2024-05-01T12:00:00Z" (UTC, second precision).
std::string format_time(TimeMs ms);
// Creates `dir` (and parents) with mode 0700 if missing; `io_error` naming the path.
Result<void> ensure_dir(const std::filesystem::path& dir);

}  // namespace meshd::ctl
