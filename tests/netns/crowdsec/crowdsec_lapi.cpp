#include "tests/netns/crowdsec/crowdsec_lapi.hpp"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace meshd::test {
namespace {

namespace fs = std::filesystem;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f) throw std::runtime_error("cannot write " + path);
}

// One of the configuration templates of this directory (shared with compare.py) with every
// @NAME@ replaced; throws when one is left without a value.
std::string fill_template(const std::string& name,
                          const std::map<std::string, std::string>& values) {
  const std::string path = std::string(MESHD_CROWDSEC_TEMPLATE_DIR) + "/" + name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  for (const auto& [key, value] : values)
    for (std::size_t at; (at = text.find("@" + key + "@")) != std::string::npos;)
      text.replace(at, key.size() + 2, value);
  std::smatch left;
  if (std::regex_search(text, left, std::regex("@[A-Z_]+@")))
    throw std::runtime_error(path + ": no value for " + left.str());
  return text;
}

// Posts one alert with one decision, logged in with the machine credentials (what
// `cscli decisions add` does, with an origin of our choice).
constexpr const char* kPostAlert = R"PY(
import datetime, json, re, sys, urllib.request
creds = open(sys.argv[1]).read()
url = re.search(r'url:\s*(\S+)', creds).group(1).rstrip('/')
login = re.search(r'login:\s*(\S+)', creds).group(1)
password = re.search(r'password:\s*(\S+)', creds).group(1)
origin, scope, value, duration = sys.argv[2:6]
def post(path, body, token=None):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method='POST',
                                 headers={'Content-Type': 'application/json'})
    if token:
        req.add_header('Authorization', 'Bearer ' + token)
    return json.load(urllib.request.urlopen(req, timeout=10))
token = post('/v1/watchers/login', {'machine_id': login, 'password': password,
                                    'scenarios': []})['token']
now = datetime.datetime.utcnow().strftime('%Y-%m-%dT%H:%M:%SZ')
scenario = origin + ':meshd-test'
post('/v1/alerts', [{
    'scenario': scenario, 'scenario_hash': '', 'scenario_version': '', 'message': scenario,
    'events_count': 1, 'start_at': now, 'stop_at': now, 'capacity': 0, 'leakspeed': '0',
    'simulated': False, 'events': [], 'source': {'scope': scope, 'value': value},
    'decisions': [{'duration': duration, 'origin': origin, 'scenario': scenario,
                   'scope': scope, 'type': 'ban', 'value': value}]}], token)
)PY";

}  // namespace

bool crowdsec_installed() {
  return run("command -v crowdsec && command -v cscli && test -d /etc/crowdsec").ok();
}

CrowdsecLapi::CrowdsecLapi(const NetNs& ns, std::string dir, int port)
    : ns_(ns), dir_(std::move(dir)), port_(port) {
  fs::create_directories(dir_ + "/data");
  fs::create_directories(dir_ + "/log");
  // The configuration shared with tests/bench/compare/compare.py (lapi.yaml.in).
  write_text(dir_ + "/config.yaml",
             fill_template("lapi.yaml.in", {{"DIR", dir_},
                                            {"LISTEN", "127.0.0.1:" + std::to_string(port_)},
                                            {"LOG_LEVEL", "info"}}));
  write_text(dir_ + "/post_alert.py", kPostAlert);
  auto m = cscli("machines add meshd-test --auto -f " + dir_ + "/local_api_credentials.yaml");
  if (!m.ok()) throw std::runtime_error("cscli machines add failed: " + m.output);
  lapi_ = std::make_unique<BackgroundProcess>(netns_prefix(ns_) + "crowdsec -c " + dir_ +
                                              "/config.yaml -no-cs >" + dir_ + "/log/stdout 2>&1");
  const std::string probe = netns_prefix(ns_) + "curl -s -o /dev/null -w '%{http_code}' " + url() +
                            "/v1/decisions/stream";
  const bool up = wait_until([&] { return run(probe).output.rfind("403", 0) == 0; }, 20000);
  if (!up) throw std::runtime_error("the CrowdSec LAPI did not come up:\n" + log_tail());
}

CrowdsecLapi::~CrowdsecLapi() {
  bouncer_.reset();  // SIGKILL: the bouncer's nft tables go with the namespace
  lapi_.reset();
  std::error_code ec;
  if (std::getenv("MESHD_TEST_KEEP_LOGS") == nullptr) fs::remove_all(dir_, ec);
}

CommandResult CrowdsecLapi::cscli(const std::string& args) const {
  return run(netns_prefix(ns_) + "cscli -c " + dir_ + "/config.yaml " + args + " 2>&1");
}

std::string CrowdsecLapi::add_bouncer(const std::string& name) const {
  auto r = run(netns_prefix(ns_) + "cscli -c " + dir_ + "/config.yaml bouncers add " + name +
               " -o raw 2>/dev/null");
  std::string key = r.output;
  while (!key.empty() && (key.back() == '\n' || key.back() == ' ')) key.pop_back();
  if (!r.ok() || key.empty() || key.find('\n') != std::string::npos)
    throw std::runtime_error("cscli bouncers add " + name + " failed: " + r.output);
  return key;
}

void CrowdsecLapi::add_decision(const std::string& origin, const std::string& scope,
                                const std::string& value, const std::string& duration) const {
  auto r = run(netns_prefix(ns_) + "python3 " + dir_ + "/post_alert.py " + dir_ +
               "/local_api_credentials.yaml " + origin + " " + scope + " " + value + " " +
               duration + " 2>&1");
  if (!r.ok()) throw std::runtime_error("posting a " + origin + " decision failed: " + r.output);
}

std::string CrowdsecLapi::log_tail(int lines) const {
  return run("tail -n " + std::to_string(lines) + " " + dir_ + "/log/crowdsec_api.log " + dir_ +
             "/log/stdout 2>&1")
      .output;
}

void CrowdsecLapi::start_firewall_bouncer(const std::string& api_key,
                                          const std::string& update_frequency) {
  stop_firewall_bouncer();
  const std::string cfg = dir_ + "/firewall-bouncer.yaml";
  write_text(cfg,
             fill_template("firewall-bouncer.yaml.in", {{"DIR", dir_},
                                                        {"API_URL", url()},
                                                        {"API_KEY", api_key},
                                                        {"UPDATE_FREQUENCY", update_frequency}}));
  bouncer_ =
      std::make_unique<BackgroundProcess>(netns_prefix(ns_) + "crowdsec-firewall-bouncer -c " +
                                          cfg + " >" + dir_ + "/log/bouncer.stdout 2>&1");
}

void CrowdsecLapi::stop_firewall_bouncer() {
  bouncer_.reset();
  run(netns_prefix(ns_) + "nft delete table ip crowdsec 2>/dev/null; " + netns_prefix(ns_) +
      "nft delete table ip6 crowdsec6 2>/dev/null");
}

}  // namespace meshd::test
