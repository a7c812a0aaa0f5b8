// meshctl ca init / ca sign: the fleet CA.
#include <sodium.h>

#include <cstdio>
#include <memory>

#include "meshd/ctl/ctl.hpp"
#include "proto/cert.hpp"
#include "proto/keys.hpp"

namespace meshd::ctl {

namespace {

namespace fs = std::filesystem;

struct CaInitOptions {
  std::string out;
  bool force = false;
};

struct CaSignOptions {
  std::string ca;
  std::string pub;
  std::string name;
  std::string domain;
  std::string role = "node";
  int days = 365;
  int backdate_minutes = 0;
  std::string out;
  bool force = false;
};

Result<void> ca_init(const CaInitOptions& o) {
  if (auto d = ensure_dir(o.out); !d) return d;
  fs::path key_path = fs::path(o.out) / "ca.key";
  fs::path pub_path = fs::path(o.out) / "ca.pub";
  std::error_code ec;
  if (!o.force && fs::exists(key_path, ec)) {
    return fail(
        "file_exists",
        key_path.string() + " already exists; refusing to overwrite the CA key (use --force)");
  }
  auto key = proto::SecretKey::generate();
  if (auto r = proto::write_secret_key(key_path, key, o.force); !r) return r;
  if (auto r = proto::write_public_key(pub_path, key.public_key(), true); !r) return r;
  std::printf("wrote %s (0600) and %s\nCA fingerprint %s\n", key_path.c_str(), pub_path.c_str(),
              key.public_key().fingerprint().c_str());
  return {};
}

// Names end up in logs, metrics labels and file names: keep them to a safe alphabet.
Result<void> check_name(std::string_view what, std::string_view v) {
  if (v.empty() || v.size() > 253) {
    return fail("bad_argument", std::string(what) + " must be 1..253 characters");
  }
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '@';
    if (!ok) {
      return fail("bad_argument", std::string(what) + " '" + std::string(v) +
                                      "' has a character outside [A-Za-z0-9-_.:/@]");
    }
  }
  return {};
}

Result<void> ca_sign(const CaSignOptions& o) {
  if (auto r = check_name("--name", o.name); !r) return r;
  if (auto r = check_name("--domain", o.domain); !r) return r;
  auto role = proto::parse_role(o.role);
  if (!role)
    return fail("bad_argument", "--role must be 'node' or 'operator', not '" + o.role + "'");

  fs::path ca_dir(o.ca);
  auto ca_key = proto::load_secret_key(ca_dir / "ca.key");
  if (!ca_key) return std::unexpected(ca_key.error());
  // A CA directory whose ca.pub is not the key's half means files were mixed up: the certs
  // would not verify anywhere, so stop now rather than later on every node.
  std::error_code ec;
  if (fs::exists(ca_dir / "ca.pub", ec)) {
    auto ca_pub = proto::load_public_key(ca_dir / "ca.pub");
    if (!ca_pub) return std::unexpected(ca_pub.error());
    if (!(*ca_pub == ca_key->public_key())) {
      return fail("wrong_key",
                  (ca_dir / "ca.pub").string() + " does not match " + (ca_dir / "ca.key").string());
    }
  }
  auto node_pub = proto::load_public_key(o.pub);
  if (!node_pub) return std::unexpected(node_pub.error());
  if (*node_pub == ca_key->public_key()) {
    return fail("wrong_key", o.pub + " is the CA's own key; sign a node or operator key");
  }

  const TimeMs now = wall_now_ms();
  v1::NodeCert cert;
  cert.set_node_id(o.name);
  cert.set_public_key(std::string(node_pub->view()));
  cert.set_failure_domain(o.domain);
  cert.set_role(*role);
  cert.set_not_before_ms(now - static_cast<TimeMs>(o.backdate_minutes) * 60'000);
  cert.set_not_after_ms(now + static_cast<TimeMs>(o.days) * 86'400'000);
  std::uint64_t serial = 0;
  while (serial == 0) {
    randombytes_buf(&serial, sizeof serial);
    serial &= (std::uint64_t{1} << 53) - 1;  // exact in JSON doubles
  }
  cert.set_serial(serial);

  auto signed_cert = proto::sign_cert(cert, *ca_key);
  if (auto r = proto::write_cert_file(o.out, signed_cert, o.force); !r) {
    if (r.error().code == "file_exists") {
      return fail("file_exists", o.out + " already exists; refusing to overwrite it (use --force)");
    }
    return r;
  }
  std::printf("wrote %s: %s '%s' in domain '%s', serial %llu, valid until %s\n", o.out.c_str(),
              std::string(proto::role_name(*role)).c_str(), o.name.c_str(), o.domain.c_str(),
              static_cast<unsigned long long>(serial), format_time(cert.not_after_ms()).c_str());
  return {};
}

}  // namespace

void register_ca_commands(CLI::App& app, Context& ctx) {
  auto* ca = app.add_subcommand("ca", "fleet certificate authority");
  ca->require_subcommand(1);

  auto init_opts = std::make_shared<CaInitOptions>();
  auto* init = ca->add_subcommand("init", "create a CA keypair: DIR/ca.key, DIR/ca.pub");
  init->add_option("--out", init_opts->out, "directory for the CA files")->required();
  init->add_flag("--force", init_opts->force, "overwrite an existing CA key");
  init->callback([&ctx, init_opts] { ctx.result = ca_init(*init_opts); });

  auto o = std::make_shared<CaSignOptions>();
  auto* sign = ca->add_subcommand("sign", "sign a node or operator public key into a cert");
  sign->add_option("--ca", o->ca, "CA directory (holds ca.key, ca.pub)")->required();
  sign->add_option("--pub", o->pub, "public key file to certify (.pub)")->required();
  sign->add_option("--name", o->name, "node or operator id")->required();
  sign->add_option("--domain", o->domain, "failure domain (zone, rack)")->required();
  sign->add_option("--role", o->role, "node | operator")
      ->check(CLI::IsMember({"node", "operator"}));
  sign->add_option("--days", o->days, "validity in days from now (0: expires at once)")
      ->check(CLI::Range(0, 36500));
  sign->add_option("--backdate-minutes", o->backdate_minutes,
                   "start the validity this many minutes before now, for nodes whose clocks "
                   "run behind the CA's (default 0)")
      ->check(CLI::Range(0, 1440));
  sign->add_option("--out", o->out, "certificate file to write")->required();
  sign->add_flag("--force", o->force, "overwrite an existing certificate file");
  sign->callback([&ctx, o] { ctx.result = ca_sign(*o); });
}

}  // namespace meshd::ctl
