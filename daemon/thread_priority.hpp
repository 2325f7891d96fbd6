// Thread priority: Linux keeps a nice value per thread, so one thread can yield to the rest.
#pragma once

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace cb::daemon {

/// Runs the calling thread `steps` nice steps below the process (at most 19). Where that is not
/// allowed, the thread runs as it is.
inline void lower_this_thread(int steps) {
    if (steps <= 0) return;
    errno = 0;
    int nice = ::getpriority(PRIO_PROCESS, 0);
    if (errno != 0) return;
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)),
                  std::min(nice + steps, 19));
}

}  // namespace cb::daemon
