#include "tests/support/netns/netns.hpp"

#include "tests/support/netns/leftovers.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

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

// A test process killed by a signal runs no destructor; the next test process's first guard
// removes its namespace (and the process inside), cgroup (and its member) and pins.
TEST(NetnsSupport, LeftoversOfAKilledTestProcessAreReaped) {
  MESHD_SKIP_UNLESS_ROOT();
  int report[2];
  ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);  // the sleepers must not hold the write end
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(report[0]);
    auto* ns = new NetNs("reap");  // never deleted: the process dies holding them
    auto* cg = new TestCgroup("reap");
    auto* pins = new BpfPinDir("reap");
    auto* in_ns = new BackgroundProcess("exec " + netns_prefix(*ns) + "sleep 300");
    auto* in_cg = new BackgroundProcess("exec sleep 300");
    cg->add_pid(in_cg->pid());
    const std::string names = ns->name() + "\n" + cg->path() + "\n" + pins->path() + "\n" +
                              std::to_string(in_ns->pid()) + "\n" + std::to_string(in_cg->pid()) +
                              "\n";
    if (::write(report[1], names.data(), names.size()) < 0) ::_exit(1);
    ::kill(::getpid(), SIGKILL);
  }
  ::close(report[1]);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = ::read(report[0], buf, sizeof buf)) > 0;) text.append(buf, n);
  ::close(report[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));

  std::istringstream lines(text);
  std::string ns_name, cgroup, pins;
  pid_t sleeper_in_ns = 0, sleeper_in_cg = 0;
  lines >> ns_name >> cgroup >> pins >> sleeper_in_ns >> sleeper_in_cg;
  ASSERT_FALSE(pins.empty()) << text;
  ASSERT_TRUE(fs::exists("/run/netns/" + ns_name));
  ASSERT_TRUE(fs::is_directory(cgroup));
  ASSERT_TRUE(fs::is_directory(pins));

  EXPECT_GE(reap_dead_test_processes(), 3u);
  EXPECT_FALSE(fs::exists("/run/netns/" + ns_name));
  EXPECT_FALSE(fs::exists(cgroup));
  EXPECT_FALSE(fs::exists(pins));
  EXPECT_FALSE(fs::exists("/run/meshd-tests/" + std::to_string(child) + ".log"));
  // Both sleepers were killed (the child's exit reparented them; they are nobody's to reap
  // here, so wait for them to disappear).
  for (pid_t p : {sleeper_in_ns, sleeper_in_cg}) {
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
      const std::string state = run("ps -o stat= -p " + std::to_string(p)).output;
      gone = state.empty() || state[0] == 'Z';
      if (!gone) ::usleep(20'000);
    }
    EXPECT_TRUE(gone) << "pid " << p << " still alive";
  }
}

}  // namespace
}  // namespace meshd::test
