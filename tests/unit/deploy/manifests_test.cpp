// Renders deploy/kubernetes (base and every overlay) with `kubectl kustomize` and checks
// what a cluster relies on: host network, exactly the three capabilities and no
// privileged container in the base, privileged only in the fallback overlay, the mounts
// the config points into, probes on the configured metrics address, tolerations,
// priority, rolling update, peer discovery, and that the ConfigMap's meshd config is
// accepted by `meshd --check-config` (when meshd is built).
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

const fs::path kKustomizeRoot = fs::path(MESHD_SOURCE_DIR) / "deploy" / "kubernetes";

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandResult run(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    result.output = "popen failed: " + command;
    return result;
  }
  std::array<char, 4096> buffer{};
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    result.output.append(buffer.data(), n);
  }
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// One rendered variant: every document of `kubectl kustomize DIR`.
struct Rendered {
  std::vector<YAML::Node> docs;

  YAML::Node find(const std::string& kind, const std::string& name_prefix) const {
    for (const auto& doc : docs) {
      if (doc["kind"].as<std::string>() == kind &&
          doc["metadata"]["name"].as<std::string>().starts_with(name_prefix)) {
        return doc;
      }
    }
    return YAML::Node{};
  }
};

Rendered render(const std::string& variant) {
  const fs::path dir = kKustomizeRoot / variant;
  const auto result = run("kubectl kustomize '" + dir.string() + "'");
  if (result.exit_code != 0) {
    ADD_FAILURE() << "kubectl kustomize " << dir << " failed (exit " << result.exit_code
                  << "; is kubectl installed? deploy/install-deps.sh):\n"
                  << result.output;
    return {};
  }
  Rendered rendered;
  for (const auto& doc : YAML::LoadAll(result.output)) {
    if (doc.IsMap()) {
      rendered.docs.push_back(doc);
    }
  }
  return rendered;
}

YAML::Node container(const YAML::Node& list, const std::string& name) {
  for (const auto& c : list) {
    if (c["name"].as<std::string>() == name) {
      return c;
    }
  }
  return YAML::Node{};
}

YAML::Node by_key(const YAML::Node& list, const std::string& key, const std::string& value) {
  if (list.IsSequence()) {
    for (const auto& item : list) {
      if (item[key] && item[key].as<std::string>() == value) {
        return item;
      }
    }
  }
  return YAML::Node{};
}

std::set<std::string> strings(const YAML::Node& seq) {
  std::set<std::string> out;
  if (seq && seq.IsSequence()) {
    for (const auto& s : seq) {
      out.insert(s.as<std::string>());
    }
  }
  return out;
}

bool is_true(const YAML::Node& n) {
  return n && n.as<bool>();
}

// "host:port" -> port; "[::1]:9464" too.
std::string port_of(const std::string& address) {
  return address.substr(address.rfind(':') + 1);
}
std::string host_of(const std::string& address) {
  return address.substr(0, address.rfind(':'));
}

// True if `path` is `dir` or below it.
bool under(const std::string& path, const std::string& dir) {
  return path == dir || path.starts_with(dir + "/");
}

// The DaemonSet, its pod spec, and the meshd config its ConfigMap carries.
struct Variant {
  std::string name;
  Rendered rendered;
  YAML::Node daemonset;
  YAML::Node pod;
  YAML::Node meshd;
  YAML::Node config;        // parsed meshd.yaml
  std::string config_text;  // as shipped in the ConfigMap

  explicit Variant(std::string variant) : name(std::move(variant)), rendered(render(name)) {
    daemonset = rendered.find("DaemonSet", "meshd");
    if (!daemonset) {
      return;
    }
    pod = daemonset["spec"]["template"]["spec"];
    meshd = container(pod["containers"], "meshd");
    const auto volume = by_key(pod["volumes"], "name", "config");
    if (!volume) {
      return;
    }
    const auto cm_name = volume["configMap"]["name"].as<std::string>();
    const auto cm = rendered.find("ConfigMap", cm_name);
    if (cm && cm["data"]["meshd.yaml"]) {
      config_text = cm["data"]["meshd.yaml"].as<std::string>();
      config = YAML::Load(config_text);
    }
  }

  // The hostPath behind the volume mounted at `mount_path` in the meshd container.
  std::string host_path_at(const std::string& mount_path) const {
    const auto mount = by_key(meshd["volumeMounts"], "mountPath", mount_path);
    if (!mount) {
      return {};
    }
    const auto volume = by_key(pod["volumes"], "name", mount["name"].as<std::string>());
    return volume && volume["hostPath"] ? volume["hostPath"]["path"].as<std::string>() : "";
  }
  std::string mount_propagation(const std::string& mount_path) const {
    const auto mount = by_key(meshd["volumeMounts"], "mountPath", mount_path);
    return mount && mount["mountPropagation"] ? mount["mountPropagation"].as<std::string>()
                                              : "None";
  }
  // The mount path of the meshd container that holds `path`, or "".
  std::string mount_holding(const std::string& path) const {
    std::string best;
    for (const auto& m : meshd["volumeMounts"]) {
      const auto mp = m["mountPath"].as<std::string>();
      if (under(path, mp) && mp.size() > best.size()) {
        best = mp;
      }
    }
    return best;
  }
};

const std::vector<std::string> kVariants = {"base", "overlays/privileged-fallback",
                                            "overlays/nftables"};

class EveryVariant : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryVariant, RendersADaemonSetWithItsConfig) {
  const Variant v(GetParam());
  ASSERT_TRUE(v.daemonset) << GetParam() << ": no DaemonSet 'meshd' rendered";
  ASSERT_TRUE(v.meshd) << "no container 'meshd'";
  ASSERT_TRUE(v.config.IsMap()) << "the DaemonSet's config volume names no ConfigMap with a "
                                   "meshd.yaml key";
  EXPECT_EQ(v.daemonset["metadata"]["namespace"].as<std::string>(), "meshd-system");
  // Host network, hostPath and capabilities are outside the "baseline" Pod Security
  // Standard: without this label, admission rejects the pods.
  const auto ns = v.rendered.find("Namespace", "meshd-system");
  ASSERT_TRUE(ns);
  EXPECT_EQ(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as<std::string>(""),
            "privileged");
}

TEST_P(EveryVariant, RunsOnEveryNodeInTheHostNetwork) {
  const Variant v(GetParam());
  ASSERT_TRUE(v.pod);
  EXPECT_TRUE(is_true(v.pod["hostNetwork"]));
  EXPECT_EQ(v.pod["dnsPolicy"].as<std::string>(), "ClusterFirstWithHostNet")
      << "with hostNetwork, only this policy resolves the headless Service";
  EXPECT_EQ(v.pod["priorityClassName"].as<std::string>(), "system-node-critical");
  bool tolerates_all = false;
  for (const auto& t : v.pod["tolerations"]) {
    tolerates_all |= t["operator"].as<std::string>() == "Exists" && !t["key"] && !t["effect"];
  }
  EXPECT_TRUE(tolerates_all) << "needs a toleration {operator: Exists} (every taint)";
  const auto strategy = v.daemonset["spec"]["updateStrategy"];
  EXPECT_EQ(strategy["type"].as<std::string>(), "RollingUpdate");
  EXPECT_EQ(strategy["rollingUpdate"]["maxUnavailable"].as<std::string>(), "10%");
}

TEST_P(EveryVariant, BidirectionalPropagationOnlyInPrivilegedContainers) {
  // Kubernetes rejects Bidirectional mount propagation in unprivileged containers.
  const Variant v(GetParam());
  for (const char* list : {"containers", "initContainers"}) {
    for (const auto& c : v.pod[list]) {
      for (const auto& m : c["volumeMounts"]) {
        if (m["mountPropagation"] && m["mountPropagation"].as<std::string>() == "Bidirectional") {
          EXPECT_TRUE(is_true(c["securityContext"]["privileged"]))
              << c["name"] << " mounts " << m["mountPath"] << " Bidirectional unprivileged";
        }
      }
    }
  }
}

TEST_P(EveryVariant, MountsWhatTheConfigPointsInto) {
  const Variant v(GetParam());
  ASSERT_TRUE(v.config.IsMap());
  const auto cfg = [&](const char* section, const char* key) {
    return v.config[section][key].as<std::string>();
  };
  // Identity and store: the host state dir, so keys survive pod restarts.
  for (const char* key : {"key", "cert", "data_dir"}) {
    const auto mount = v.mount_holding(cfg("node", key));
    EXPECT_EQ(v.host_path_at(mount), "/var/lib/meshd") << "node." << key;
  }
  // The CA public key comes from the meshd-ca ConfigMap.
  const auto ca_mount =
      by_key(v.meshd["volumeMounts"], "mountPath", v.mount_holding(cfg("node", "ca")));
  ASSERT_TRUE(ca_mount) << "node.ca is not on a mounted volume";
  const auto ca_volume = by_key(v.pod["volumes"], "name", ca_mount["name"].as<std::string>());
  EXPECT_EQ(ca_volume["configMap"]["name"].as<std::string>(), "meshd-ca");
  // The bpffs and the host's cgroup v2 root.
  EXPECT_EQ(v.host_path_at(v.mount_holding(cfg("enforcement", "pin_path"))), "/sys/fs/bpf");
  EXPECT_EQ(v.host_path_at(cfg("enforcement", "cgroup")), "/sys/fs/cgroup")
      << "enforcement.cgroup must be exactly the mount of the host's cgroup root";
  EXPECT_NE(cfg("enforcement", "cgroup"), "/sys/fs/cgroup")
      << "the host's cgroup root must not hide the container's own /sys/fs/cgroup";
  // The control socket is on a writable volume.
  EXPECT_FALSE(v.mount_holding(cfg("control", "socket")).empty());
  EXPECT_TRUE(is_true(v.meshd["securityContext"]["readOnlyRootFilesystem"]));
}

TEST_P(EveryVariant, ConfigIsTheConfigMapMountedAsADirectory) {
  // A subPath mount never sees a changed ConfigMap, so a SIGHUP reload would re-read the
  // old file; podman 4.3 cannot mount one at all (tests/pods). The daemon's --config must
  // name the file inside the directory mount of the config volume.
  const Variant v(GetParam());
  ASSERT_TRUE(v.meshd);
  std::string config_mount;
  for (const auto& m : v.meshd["volumeMounts"]) {
    if (m["name"].as<std::string>() == "config") {
      EXPECT_FALSE(m["subPath"]) << "the config volume is mounted with subPath";
      config_mount = m["mountPath"].as<std::string>();
    }
  }
  ASSERT_FALSE(config_mount.empty()) << "the meshd container does not mount the config volume";
  std::vector<std::string> command;
  for (const auto& arg : v.meshd["command"]) {
    command.push_back(arg.as<std::string>());
  }
  const auto flag = std::find(command.begin(), command.end(), "--config");
  ASSERT_TRUE(flag != command.end() && flag + 1 != command.end()) << "meshd has no --config";
  EXPECT_EQ(flag[1], config_mount + "/meshd.yaml");
}

TEST_P(EveryVariant, SeccompConfinesAllButTheDaemon) {
  // The pod's default is the runtime's profile (Kubernetes' own default is Unconfined); only
  // the meshd container, which needs bpf() and perf_event_open(), is unconfined: the
  // default profiles of CRI-O and podman allow those only with CAP_SYS_ADMIN (tests/pods).
  const Variant v(GetParam());
  ASSERT_TRUE(v.pod);
  EXPECT_EQ(v.pod["securityContext"]["seccompProfile"]["type"].as<std::string>(""),
            "RuntimeDefault");
  for (const auto& c : v.pod["initContainers"]) {
    EXPECT_FALSE(c["securityContext"]["seccompProfile"]) << c["name"] << " overrides the pod's";
  }
  EXPECT_EQ(v.meshd["securityContext"]["seccompProfile"]["type"].as<std::string>(""), "Unconfined");
}

TEST_P(EveryVariant, ProbesHitTheConfiguredHealthEndpoint) {
  const Variant v(GetParam());
  ASSERT_TRUE(v.config.IsMap());
  const auto listen = v.config["metrics"]["listen"].as<std::string>();
  for (const char* probe : {"livenessProbe", "readinessProbe", "startupProbe"}) {
    const auto get = v.meshd[probe]["httpGet"];
    ASSERT_TRUE(get) << probe << " is not an httpGet probe";
    EXPECT_EQ(get["path"].as<std::string>(), "/healthz") << probe;
    EXPECT_EQ(get["port"].as<std::string>(), port_of(listen)) << probe;
    // With hostNetwork the probe goes to the node IP unless `host` is set; a loopback
    // listener is only reachable through host: 127.0.0.1.
    const auto host = host_of(listen);
    if (host == "127.0.0.1") {
      EXPECT_EQ(get["host"].as<std::string>(), "127.0.0.1") << probe;
    } else {
      EXPECT_TRUE(host == "0.0.0.0" || host == "[::]") << "metrics.listen " << listen;
    }
  }
}

TEST_P(EveryVariant, PeersFindEachOtherThroughTheHeadlessService) {
  const Variant v(GetParam());
  ASSERT_TRUE(v.config.IsMap());
  const auto svc = v.rendered.find("Service", "meshd-peers");
  ASSERT_TRUE(svc);
  EXPECT_EQ(svc["spec"]["clusterIP"].as<std::string>(), "None");
  EXPECT_TRUE(is_true(svc["spec"]["publishNotReadyAddresses"]))
      << "starting nodes must be discoverable before they are ready";
  for (const auto& kv : svc["spec"]["selector"]) {
    const auto label =
        v.daemonset["spec"]["template"]["metadata"]["labels"][kv.first.as<std::string>()];
    EXPECT_TRUE(label && label.as<std::string>() == kv.second.as<std::string>())
        << "Service selector " << kv.first << " does not select the meshd pods";
  }
  const auto port = svc["spec"]["ports"][0]["port"].as<std::string>();
  EXPECT_EQ(port_of(v.config["mesh"]["listen"].as<std::string>()), port);
  const auto mesh_port = by_key(v.meshd["ports"], "name", "mesh");
  ASSERT_TRUE(mesh_port) << "the meshd container declares no 'mesh' port";
  EXPECT_EQ(mesh_port["containerPort"].as<std::string>(), port);
  const auto expected_seed = "dns:meshd-peers." + svc["metadata"]["namespace"].as<std::string>() +
                             ".svc.cluster.local:" + port;
  EXPECT_EQ(strings(v.config["mesh"]["peers"]), std::set<std::string>{expected_seed});
}

TEST_P(EveryVariant, EachNodeMakesItsOwnKeyAndWaitsForItsCertificate) {
  // No shared key: the key is generated on the node into the host state dir, and the
  // daemon starts only after enrollment wrote node.cert.
  const Variant v(GetParam());
  ASSERT_TRUE(v.pod);
  std::vector<std::string> init_names;
  for (const auto& c : v.pod["initContainers"]) {
    init_names.push_back(c["name"].as<std::string>());
    EXPECT_TRUE(c["securityContext"]["capabilities"]["drop"] &&
                strings(c["securityContext"]["capabilities"]["drop"]).contains("ALL"))
        << c["name"] << " must drop all capabilities";
    EXPECT_FALSE(c["securityContext"]["capabilities"]["add"]) << c["name"];
    EXPECT_FALSE(is_true(c["securityContext"]["privileged"])) << c["name"];
  }
  EXPECT_EQ(init_names, (std::vector<std::string>{"keygen", "wait-for-cert"}));
  const auto script = [&](const char* name) {
    std::string all;
    for (const auto& arg : container(v.pod["initContainers"], name)["command"]) {
      all += arg.as<std::string>() + " ";
    }
    return all;
  };
  EXPECT_EQ(script("keygen"), "meshctl enroll keygen --dir /var/lib/meshd ");
  EXPECT_TRUE(script("wait-for-cert").starts_with("meshctl enroll wait --dir /var/lib/meshd "));
  // The CA the init container waits for is the one the daemon is configured with.
  EXPECT_NE(script("wait-for-cert")
                .find("--ca " +
                      fs::path(v.config["node"]["ca"].as<std::string>()).parent_path().string()),
            std::string::npos);
  // Neither needs a shell: the from-scratch image has none.
  for (const char* name : {"keygen", "wait-for-cert"}) {
    EXPECT_EQ(script(name).find("/bin/sh"), std::string::npos) << name;
  }
  // No Secret with key material anywhere in the manifests.
  for (const auto& doc : v.rendered.docs) {
    EXPECT_NE(doc["kind"].as<std::string>(), "Secret");
  }
}

// "64Mi" -> 64, "1Gi" -> 1024 (MiB); "250m" -> 250, "1" -> 1000 (millicores); -1 otherwise.
long quantity(const std::string& q) {
  try {
    if (q.ends_with("Mi")) return std::stol(q.substr(0, q.size() - 2));
    if (q.ends_with("Gi")) return std::stol(q.substr(0, q.size() - 2)) * 1024;
    if (q.ends_with("m")) return std::stol(q.substr(0, q.size() - 1));
    return std::stol(q) * 1000;
  } catch (const std::exception&) {
    return -1;
  }
}

// Against what mesh_resources_bench measured (5-node netns mesh, bpf backend): idle RSS
// 17.8 MB, 118 MB with 100k active claims, plus the BPF maps charged to the pod's memory
// cgroup. A limit below that would OOM-kill a node under a large block list.
TEST_P(EveryVariant, ResourcesCoverMeasuredUsage) {
  const Variant v(GetParam());
  const auto res = v.meshd["resources"];
  ASSERT_TRUE(res["requests"] && res["limits"]);
  const long req_mem = quantity(res["requests"]["memory"].as<std::string>());
  const long lim_mem = quantity(res["limits"]["memory"].as<std::string>());
  const long req_cpu = quantity(res["requests"]["cpu"].as<std::string>());
  const long lim_cpu = quantity(res["limits"]["cpu"].as<std::string>());
  EXPECT_GE(req_mem, 24) << "below the measured idle RSS";
  EXPECT_GE(lim_mem, 192) << "below the measured RSS with 100k claims plus maps";
  EXPECT_LE(req_mem, lim_mem);
  EXPECT_GT(req_cpu, 0);
  EXPECT_GE(lim_cpu, 500) << "claim verification needs CPU during bursts";
  EXPECT_LE(req_cpu, lim_cpu);
}

TEST_P(EveryVariant, ConfigPassesMeshdCheckConfig) {
#ifndef MESHD_BIN
  GTEST_SKIP() << "meshd is not built yet (no meshd target): --check-config not run";
#else
  const Variant v(GetParam());
  ASSERT_FALSE(v.config_text.empty());
  const fs::path file =
      fs::temp_directory_path() / ("meshd-deploy-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(file) << v.config_text;
  const auto result = run(std::string(MESHD_BIN) + " --check-config '" + file.string() + "'");
  fs::remove(file);
  EXPECT_EQ(result.exit_code, 0) << "meshd --check-config rejects the " << GetParam()
                                 << " ConfigMap:\n"
                                 << result.output;
#endif
}

INSTANTIATE_TEST_SUITE_P(Kustomize, EveryVariant, ::testing::ValuesIn(kVariants),
                         [](const auto& info) {
                           auto name = info.param.substr(info.param.rfind('/') + 1);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(KustomizeBase, IsNotPrivilegedAndHasExactlyThreeCapabilities) {
  const Variant v("base");
  ASSERT_TRUE(v.meshd);
  const auto sc = v.meshd["securityContext"];
  EXPECT_FALSE(is_true(sc["privileged"]));
  EXPECT_FALSE(is_true(sc["allowPrivilegeEscalation"]));
  EXPECT_EQ(strings(sc["capabilities"]["add"]),
            (std::set<std::string>{"BPF", "NET_ADMIN", "PERFMON"}));
  EXPECT_EQ(strings(sc["capabilities"]["drop"]), std::set<std::string>{"ALL"});
  // Nothing in the base is privileged, in any container.
  for (const char* list : {"containers", "initContainers"}) {
    for (const auto& c : v.pod[list]) {
      EXPECT_FALSE(is_true(c["securityContext"]["privileged"])) << c["name"];
    }
  }
  EXPECT_FALSE(is_true(v.pod["hostPID"]));
  EXPECT_EQ(v.mount_propagation("/sys/fs/bpf"), "HostToContainer");
}

TEST(KustomizeFallback, IsPrivilegedLabelledAndBidirectional) {
  const Variant v("overlays/privileged-fallback");
  ASSERT_TRUE(v.meshd);
  EXPECT_TRUE(is_true(v.meshd["securityContext"]["privileged"]));
  EXPECT_NE(v.meshd["securityContext"]["allowPrivilegeEscalation"].as<std::string>("true"), "false")
      << "the API rejects allowPrivilegeEscalation: false with privileged: true";
  EXPECT_EQ(v.mount_propagation("/sys/fs/bpf"), "Bidirectional");
  EXPECT_EQ(v.daemonset["metadata"]["labels"]["meshd.io/variant"].as<std::string>(""),
            "privileged-fallback");
  EXPECT_EQ(
      v.daemonset["spec"]["template"]["metadata"]["labels"]["meshd.io/variant"].as<std::string>(""),
      "privileged-fallback");
  // The init containers stay unprivileged: only the daemon needs it.
  for (const auto& c : v.pod["initContainers"]) {
    EXPECT_FALSE(is_true(c["securityContext"]["privileged"])) << c["name"];
  }
}

TEST(KustomizeNftables, DiffersFromTheBaseOnlyInTheBackend) {
  const Variant base("base");
  const Variant nft("overlays/nftables");
  ASSERT_TRUE(base.config.IsMap() && nft.config.IsMap());
  EXPECT_EQ(base.config["enforcement"]["backend"].as<std::string>(), "auto");
  EXPECT_EQ(nft.config["enforcement"]["backend"].as<std::string>(), "nftables");
  // Compare the parsed configs with the backend aligned: comments may differ, keys not.
  YAML::Node a = YAML::Clone(base.config);
  YAML::Node b = YAML::Clone(nft.config);
  a["enforcement"]["backend"] = "x";
  b["enforcement"]["backend"] = "x";
  YAML::Emitter ea, eb;
  ea << a;
  eb << b;
  EXPECT_EQ(std::string(ea.c_str()), std::string(eb.c_str()))
      << "overlays/nftables/meshd.yaml drifted from base/meshd.yaml";
}

TEST(PackagedConfig, PassesMeshdCheckConfig) {
#ifndef MESHD_BIN
  GTEST_SKIP() << "meshd is not built yet (no meshd target): --check-config not run";
#else
  const auto file = fs::path(MESHD_SOURCE_DIR) / "deploy" / "config" / "meshd.yaml";
  const auto result = run(std::string(MESHD_BIN) + " --check-config '" + file.string() + "'");
  EXPECT_EQ(result.exit_code, 0) << "meshd --check-config rejects deploy/config/meshd.yaml:\n"
                                 << result.output;
#endif
}

}  // namespace
