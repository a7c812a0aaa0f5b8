#include "tests/support/netns/leftovers.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace meshd::test {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kLogDir = "/run/meshd-tests";

const char* kind_name(Leftover kind) {
  switch (kind) {
    case Leftover::netns:
      return "netns";
    case Leftover::link:
      return "link";
    case Leftover::cgroup:
      return "cgroup";
    case Leftover::pin_dir:
      return "pins";
  }
  return "?";
}

// Field 22 of /proc/PID/stat: the start time in clock ticks since boot. With the pid it names
// one process for the machine's uptime (a reused pid has another start time).
std::string start_time(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');  // comm may hold spaces and parentheses
  if (close == std::string::npos) return {};
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
  }
  return field;
}

void sh(const std::string& command) {
  const std::string quiet = "(" + command + ") >/dev/null 2>&1";
  if (std::system(quiet.c_str()) == -1) std::perror("leftovers: system");
}

void kill_cgroup_members(const std::string& path) {
  std::ifstream procs(path + "/cgroup.procs");
  pid_t pid;
  while (procs >> pid) ::kill(pid, SIGKILL);
}

bool remove_one(std::string_view kind, const std::string& name) {
  std::error_code ec;
  if (kind == "netns") {
    if (!fs::exists("/run/netns/" + name)) return false;
    // Daemons started inside the namespace would outlive it: kill them first.
    sh("ip netns pids " + name + " | xargs -r kill -9");
    sh("ip netns del " + name);
    return true;
  }
  if (kind == "link") {
    if (!fs::exists("/sys/class/net/" + name)) return false;
    sh("ip link del " + name);
    return true;
  }
  if (kind == "cgroup") {
    if (!fs::is_directory(name)) return false;
    for (int attempt = 0; attempt < 50 && ::rmdir(name.c_str()) != 0 && errno == EBUSY; ++attempt) {
      kill_cgroup_members(name);
      ::usleep(20'000);
    }
    return true;
  }
  if (kind == "pins") {
    if (!fs::exists(name)) return false;
    fs::remove_all(name, ec);
    return true;
  }
  return false;
}

void ignore_sigpipe_in_this_process() {
  struct sigaction sa {};
  sa.sa_handler = [](int) {};  // a write to a closed pipe then fails with EPIPE
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGPIPE, &sa, nullptr);
}

struct Log {
  std::mutex mu;
  int fd = -1;
  pid_t owner = 0;  // a forked child starts its own log
  std::string path;
  long live = 0;  // created and not yet removed
};

Log& own_log() {
  static Log log;
  return log;
}

}  // namespace

std::size_t reap_dead_test_processes(std::string_view log_dir) {
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(log_dir), ec)) {
    const std::string file = entry.path().string();
    if (entry.path().extension() != ".log") continue;
    const std::string stem = entry.path().stem().string();
    pid_t pid = 0;
    const auto [end, parse_error] = std::from_chars(stem.data(), stem.data() + stem.size(), pid);
    if (parse_error != std::errc() || end != stem.data() + stem.size()) continue;
    std::ifstream in(file);
    std::string header, recorded_start;
    in >> header >> recorded_start;
    if (header != "start") continue;
    if (pid == ::getpid() || start_time(pid) == recorded_start) continue;  // alive
    // Another test process may be reaping the same log right now.
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      continue;
    }
    std::vector<std::pair<std::string, std::string>> live;
    std::string op, kind, name;
    while (in >> op >> kind && std::getline(in >> std::ws, name)) {
      if (op == "+") {
        live.emplace_back(kind, name);
      } else {
        for (auto it = live.rbegin(); it != live.rend(); ++it) {
          if (it->first == kind && it->second == name) {
            live.erase(std::next(it).base());
            break;
          }
        }
      }
    }
    for (auto it = live.rbegin(); it != live.rend(); ++it) {
      if (remove_one(it->first, it->second)) {
        std::fprintf(stderr, "leftovers: removed %s %s of dead test process %d\n",
                     it->first.c_str(), it->second.c_str(), static_cast<int>(pid));
        ++removed;
      }
    }
    fs::remove(file, ec);
    ::close(fd);
  }
  return removed;
}

void note_leftover(Leftover kind, const std::string& name, bool created) {
  Log& log = own_log();
  std::lock_guard lock(log.mu);
  if (log.owner != ::getpid()) {
    if (log.fd >= 0) ::close(log.fd);  // the parent's log, inherited through fork()
    log.fd = -1;
    log.live = 0;
    log.owner = ::getpid();
    ignore_sigpipe_in_this_process();
    std::error_code ec;
    fs::create_directories(std::string(kLogDir), ec);
    reap_dead_test_processes(kLogDir);
    const std::string path = std::string(kLogDir) + "/" + std::to_string(::getpid()) + ".log";
    log.fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (log.fd < 0) return;  // not root or no /run: the guards still clean up normally
    log.path = path;
    // A process that exits normally with nothing left over leaves no log behind.
    static bool registered = false;
    if (!registered)
      registered = (std::atexit([] {
                      Log& l = own_log();
                      std::lock_guard exit_lock(l.mu);
                      if (l.live == 0 && l.owner == ::getpid()) ::unlink(l.path.c_str());
                    }) == 0);
    const std::string header = "start " + start_time(::getpid()) + "\n";
    if (::write(log.fd, header.data(), header.size()) < 0) std::perror("leftovers: write");
  }
  if (log.fd < 0) return;
  log.live += created ? 1 : -1;
  const std::string line = std::string(created ? "+ " : "- ") + kind_name(kind) + " " + name + "\n";
  if (::write(log.fd, line.data(), line.size()) < 0) std::perror("leftovers: write");
}

}  // namespace meshd::test
