#include "tests/support/netns/netns.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

namespace meshd::test {
namespace {

namespace fs = std::filesystem;

TEST(NetnsSupport, UniqueNamesDifferAndFitInterfaceNames) {
  EXPECT_NE(unique_name("a"), unique_name("a"));
  for (int i = 0; i < 100; ++i) EXPECT_LE(unique_ifname("abcd").size(), 15u);
}

TEST(NetnsSupport, VethPairConnectsHostAndNamespaceAndIsRemoved) {
  MESHD_SKIP_UNLESS_ROOT();
  std::string ns_name, host;
  {
    NetNs ns("sup");
    ns_name = ns.name();
    VethPair veth("sup", ns, {"10.251.0.1/24", "10.251.0.2/24", "fd51::1/64", "fd51::2/64"});
    host = veth.host_name();
    EXPECT_GT(veth.host_ifindex(), 0);
    EXPECT_TRUE(run_in_netns(ns, "ping -c1 -W2 10.251.0.1").ok());
    EXPECT_TRUE(run_in_netns(ns, "ping -6 -c1 -W2 fd51::1").ok());
  }
  EXPECT_FALSE(fs::exists("/sys/class/net/" + host));
  EXPECT_FALSE(fs::exists("/run/netns/" + ns_name));
}

TEST(NetnsSupport, CgroupHoldsChildAndIsRemoved) {
  MESHD_SKIP_UNLESS_ROOT();
  std::string path;
  {
    TestCgroup cg("sup");
    path = cg.path();
    EXPECT_GT(cg.id(), 0u);
    const std::string procs = cg.path() + "/cgroup.procs";
    int rc = run_in_child(&cg, "meshd-sup", [&] {
      // The child sees itself in the cgroup.
      auto r = run("grep -qx " + std::to_string(::getpid()) + " " + procs);
      return r.exit_code;
    });
    EXPECT_EQ(rc, 0);
    // A background process left in the cgroup does not stop its removal.
    BackgroundProcess sleeper("exec sleep 30");
    cg.add_pid(sleeper.pid());
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(NetnsSupport, PinDirIsCreatedOnBpffsAndRemoved) {
  MESHD_SKIP_UNLESS_ROOT();
  std::string path;
  {
    BpfPinDir pins("sup");
    path = pins.path();
    EXPECT_TRUE(fs::is_directory(path));
  }
  EXPECT_FALSE(fs::exists(path));
}

}  // namespace
}  // namespace meshd::test
