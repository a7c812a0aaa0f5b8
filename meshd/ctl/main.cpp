// meshctl: operator CLI for meshd (keys, CA, certificates; control-API commands).
#include <cstdio>
#include <exception>
#include <string>

#include "meshd/ctl/ctl.hpp"

int main(int argc, char** argv) {
  meshd::ctl::Context ctx;
  CLI::App app{"meshctl: operator CLI for the meshd defence mesh"};
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();
  app.add_option("--socket", ctx.socket, "control API Unix socket of the local meshd");

  meshd::ctl::register_keys_commands(app, ctx);
  meshd::ctl::register_ca_commands(app, ctx);
  meshd::ctl::register_cert_commands(app, ctx);
  meshd::ctl::register_control_commands(app, ctx);
  meshd::ctl::register_enroll_commands(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, like every other failure; --help has the details.
    std::fprintf(stderr, "meshctl: %s (see meshctl --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "meshctl: %s\n", e.what());
    return 1;
  }
  if (!ctx.result) {
    std::fprintf(stderr, "meshctl: %s\n", ctx.result.error().message.c_str());
    return 1;
  }
  return 0;
}
