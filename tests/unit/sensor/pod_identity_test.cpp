#include "sensor/pod_identity.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace meshd::sensor {
namespace {

constexpr const char* kCid = "8d3e0b1f2a9c4d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e";

TEST(PodIdentityParse, CgroupfsDriver) {
  auto id = parse_kubelet_cgroup(
      std::string("/kubepods/burstable/pod0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c/") + kCid);
  EXPECT_EQ(id.pod_uid, "0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c");
  EXPECT_EQ(id.container_id, kCid);
  EXPECT_EQ(id.cgroup_path,
            std::string("/kubepods/burstable/pod0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c/") + kCid);

  auto guaranteed = parse_kubelet_cgroup(
      std::string("/kubepods/pod0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c/") + kCid);
  EXPECT_EQ(guaranteed.pod_uid, "0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c");
  EXPECT_EQ(guaranteed.container_id, kCid);

  auto crio = parse_kubelet_cgroup(
      std::string("/kubepods/besteffort/pod0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c/crio-") + kCid);
  EXPECT_EQ(crio.container_id, kCid);

  // The pod-level cgroup itself (the pause/sandbox level): a pod, no container.
  auto pod_only =
      parse_kubelet_cgroup("/kubepods/besteffort/pod0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c");
  EXPECT_EQ(pod_only.pod_uid, "0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c");
  EXPECT_EQ(pod_only.container_id, "");
}

TEST(PodIdentityParse, SystemdDriver) {
  const std::string base =
      "/kubepods.slice/kubepods-burstable.slice/"
      "kubepods-burstable-pod0f4c7b8a_2d3e_4f5a_9b6c_7d8e9f0a1b2c.slice/";
  for (const char* runtime : {"cri-containerd-", "docker-", "crio-"}) {
    auto id = parse_kubelet_cgroup(base + runtime + kCid + ".scope");
    EXPECT_EQ(id.pod_uid, "0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c") << runtime;
    EXPECT_EQ(id.container_id, kCid) << runtime;
  }
  auto guaranteed = parse_kubelet_cgroup(
      std::string("/kubepods.slice/kubepods-pod0f4c7b8a_2d3e_4f5a_9b6c_7d8e9f0a1b2c.slice/"
                  "cri-containerd-") +
      kCid + ".scope");
  EXPECT_EQ(guaranteed.pod_uid, "0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c");
  EXPECT_EQ(guaranteed.container_id, kCid);

  // A process in a sub-cgroup of the container still belongs to that container.
  auto nested = parse_kubelet_cgroup(base + "cri-containerd-" + kCid + ".scope/init.scope");
  EXPECT_EQ(nested.container_id, kCid);
  // CRI-O's conmon runs next to the container and is not the container.
  auto conmon = parse_kubelet_cgroup(base + "crio-conmon-" + kCid + ".scope");
  EXPECT_EQ(conmon.container_id, "");
  EXPECT_EQ(conmon.pod_uid, "0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c");
  // kubelet under its own slice (kubelet.slice/kubelet-kubepods.slice/...)
  auto kubelet_slice = parse_kubelet_cgroup(
      std::string("/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
                  "kubelet-kubepods-besteffort-pod0f4c7b8a_2d3e_4f5a_9b6c_7d8e9f0a1b2c.slice/"
                  "cri-containerd-") +
      kCid + ".scope");
  EXPECT_EQ(kubelet_slice.container_id, kCid);
}

TEST(PodIdentityParse, StaticPodUidAndNonKubernetesContainers) {
  auto static_pod = parse_kubelet_cgroup(
      std::string("/kubepods/burstable/pod5d41402abc4b2a76b9719d911017c592/") + kCid);
  EXPECT_EQ(static_pod.pod_uid, "5d41402abc4b2a76b9719d911017c592");

  auto docker = parse_kubelet_cgroup(std::string("/system.slice/docker-") + kCid + ".scope");
  EXPECT_EQ(docker.container_id, kCid);
  EXPECT_EQ(docker.pod_uid, "");
  auto docker_fs = parse_kubelet_cgroup(std::string("/docker/") + kCid);
  EXPECT_EQ(docker_fs.container_id, kCid);

  for (const char* plain :
       {"/", "/user.slice/user-0.slice/session-3.scope", "/system.slice/sshd.service",
        "/kubepods/burstable/podnot-a-uid/xyz", "/meshd-test-123"}) {
    auto id = parse_kubelet_cgroup(plain);
    EXPECT_EQ(id.container_id, "") << plain;
    EXPECT_EQ(id.pod_uid, "") << plain;
    EXPECT_EQ(id.cgroup_path, plain);
  }
}

TEST(CgroupMount, FoundInProcMounts) {
  const char* hybrid =
      "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\n"
      "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n"
      "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
  EXPECT_EQ(find_cgroup2_mount(hybrid).value(), "/sys/fs/cgroup/unified");
  EXPECT_EQ(find_cgroup2_mount("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n").value(),
            "/sys/fs/cgroup");
  auto none = find_cgroup2_mount("proc /proc proc rw 0 0\n");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, "no_cgroup2");
}

std::uint64_t inode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

TEST(CgroupPathResolver, MapsDirectoryInodesToRelativePathsAndRescansOnMiss) {
  // Any directory tree has the same id = inode relation as cgroupfs, so the walk and the
  // cache can be tested without root.
  char tmpl[] = "/tmp/meshd-cg-XXXXXX";
  const std::string root = ::mkdtemp(tmpl);
  std::filesystem::create_directories(root + "/kubepods/burstable/podx/c1");
  CgroupPathResolver r(root, 1000);
  EXPECT_EQ(r.path_of(inode_of(root + "/kubepods/burstable/podx/c1"), 0).value(),
            "/kubepods/burstable/podx/c1");
  EXPECT_EQ(r.path_of(inode_of(root), 1).value(), "/");
  EXPECT_EQ(r.stats().rescans, 1u);
  EXPECT_EQ(r.stats().hits, 1u);

  std::filesystem::create_directories(root + "/kubepods/burstable/podx/c2");
  const auto c2 = inode_of(root + "/kubepods/burstable/podx/c2");
  EXPECT_FALSE(r.path_of(c2, 500));  // rescans are rate limited
  EXPECT_EQ(r.stats().unknown, 1u);
  EXPECT_EQ(r.path_of(c2, 1500).value(), "/kubepods/burstable/podx/c2");
  EXPECT_EQ(r.stats().rescans, 2u);
  std::filesystem::remove_all(root);
}

TEST(CgroupPathResolver, ResolvesTheRealCgroup2Root) {
  auto r = CgroupPathResolver::from_proc_mounts();
  if (!r) GTEST_SKIP() << r.error().message;
  EXPECT_EQ(r->path_of(inode_of(r->mount_point()), 0).value(), "/");
}

TEST(PodList, ParsesKubeletPodListAndReportsBadJson) {
  const char* pods = R"({"kind":"PodList","apiVersion":"v1","metadata":{},"items":[
    {"metadata":{"name":"web-1","namespace":"shop","uid":"0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c"}},
    {"metadata":{"name":"no-uid","namespace":"x"}},
    "garbage"]})";
  auto parsed = parse_pod_list(pods, "pods.json");
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ(parsed->at("0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c").name, "web-1");
  auto bad = parse_pod_list("{", "pods.json");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("pods.json"), std::string::npos);
  EXPECT_FALSE(parse_pod_list(R"({"items":5})", "pods.json"));
}

TEST(PodIdentityResolver, CombinesPathParsingAndPodMetadata) {
  char tmpl[] = "/tmp/meshd-cg-XXXXXX";
  const std::string root = ::mkdtemp(tmpl);
  const std::string cg = std::string(
                             "/kubepods.slice/kubepods-besteffort.slice/"
                             "kubepods-besteffort-pod0f4c7b8a_2d3e_4f5a_9b6c_7d8e9f0a1b2c.slice/"
                             "cri-containerd-") +
                         kCid + ".scope";
  std::filesystem::create_directories(root + cg);
  const std::string pods = root + "/pods.json";
  std::ofstream(pods) << R"({"items":[{"metadata":{"name":"web-1","namespace":"shop",
      "uid":"0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c"}}]})";
  PodListFile meta(pods);
  ASSERT_TRUE(meta.maybe_reload().value());
  EXPECT_FALSE(meta.maybe_reload().value());
  CgroupPathResolver cgroups(root);
  PodIdentityResolver resolver(&cgroups, &meta);
  auto id = resolver.resolve(inode_of(root + cg), 0);
  EXPECT_EQ(id.cgroup_path, cg);
  EXPECT_EQ(id.container_id, kCid);
  EXPECT_EQ(id.pod_uid, "0f4c7b8a-2d3e-4f5a-9b6c-7d8e9f0a1b2c");
  EXPECT_EQ(id.pod_name, "web-1");
  EXPECT_EQ(id.pod_namespace, "shop");
  // Unknown id: empty identity, no crash.
  EXPECT_EQ(resolver.resolve(1, 0).cgroup_path, "");
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace meshd::sensor
