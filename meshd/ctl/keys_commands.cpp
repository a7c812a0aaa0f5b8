// meshctl keys gen: a node (or operator) Ed25519 keypair.
#include <cstdio>
#include <memory>

#include "meshd/ctl/ctl.hpp"
#include "proto/keys.hpp"

namespace meshd::ctl {

namespace {

struct KeysGenOptions {
  std::string out;
  std::string name = "node";
  bool force = false;
};

Result<void> keys_gen(const KeysGenOptions& o) {
  // The name becomes a file name inside --out: no separators, no hidden files.
  bool name_ok = !o.name.empty() && o.name.size() <= 128 && o.name[0] != '.';
  for (char c : o.name) {
    name_ok = name_ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '@');
  }
  if (!name_ok) {
    return fail("bad_argument", "--name '" + o.name +
                                    "' must be 1..128 characters of [A-Za-z0-9-_.@], not "
                                    "starting with '.'");
  }
  if (auto d = ensure_dir(o.out); !d) return d;
  std::filesystem::path dir(o.out);
  auto key_path = dir / (o.name + ".key");
  auto pub_path = dir / (o.name + ".pub");
  std::error_code ec;
  if (!o.force && std::filesystem::exists(key_path, ec)) {
    return fail("file_exists",
                key_path.string() + " already exists; refusing to overwrite a key (use --force)");
  }
  auto key = proto::SecretKey::generate();
  if (auto r = proto::write_secret_key(key_path, key, o.force); !r) return r;
  if (auto r = proto::write_public_key(pub_path, key.public_key(), true); !r) return r;
  std::printf("wrote %s (0600) and %s\nfingerprint %s\n", key_path.c_str(), pub_path.c_str(),
              key.public_key().fingerprint().c_str());
  return {};
}

}  // namespace

void register_keys_commands(CLI::App& app, Context& ctx) {
  auto* keys = app.add_subcommand("keys", "node and operator keys");
  keys->require_subcommand(1);
  auto opts = std::make_shared<KeysGenOptions>();
  auto* gen =
      keys->add_subcommand("gen", "generate an Ed25519 keypair: DIR/NAME.key, DIR/NAME.pub");
  gen->add_option("--out", opts->out, "directory for the key files")->required();
  gen->add_option("--name", opts->name, "file base name (e.g. an operator id)");
  gen->add_flag("--force", opts->force, "overwrite an existing key");
  gen->callback([&ctx, opts] { ctx.result = keys_gen(*opts); });
}

}  // namespace meshd::ctl
