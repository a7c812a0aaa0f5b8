// Leftovers of killed test processes.
//
// The guards in netns.hpp remove what they created in their destructors, but a test process
// killed by a signal (ctest's timeout kill, SIGKILL, a SIGPIPE through `| head`) runs no
// destructor: its namespaces, the daemons inside them, its cgroups and bpffs pins stay on the
// machine. So every guard also writes what it creates to a per-process log,
// /run/meshd-tests/<pid>.log ("+ kind name" when created, "- kind name" when removed), and
// the first guard any later test process builds removes what a dead process's log still
// lists. /run is a tmpfs: the logs do not outlive a reboot, when pids start over.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace meshd::test {

// What a guard created. Removal order on reaping is the reverse of creation order.
enum class Leftover { netns, link, cgroup, pin_dir };

// Records that this process created (`created` true) or removed `name`. The first call also
// reaps the logs of dead processes and makes SIGPIPE harmless (a handler, not SIG_IGN, so
// child processes still get the default).
void note_leftover(Leftover kind, const std::string& name, bool created);

// Removes everything the logs of dead processes still list, then the logs; returns how many
// objects it removed. A log whose process is alive (same pid and start time) is left alone.
std::size_t reap_dead_test_processes(std::string_view log_dir = "/run/meshd-tests");

}  // namespace meshd::test
