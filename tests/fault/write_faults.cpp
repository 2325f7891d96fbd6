// A preloaded library for integration tests: while the file named by COMMBROKER_WRITE_FAULT
// exists, every pwrite64, fsync and fdatasync fails with ENOSPC, as on a full disk. SQLite writes
// its database and WAL with these calls only; logs and sockets use others and keep working.
// Removing the file is the disk getting room again.
#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace {

bool disk_full() {
    static const char* flag = std::getenv("COMMBROKER_WRITE_FAULT");
    return flag && ::access(flag, F_OK) == 0;
}

template <class F>
F next(const char* name) {
    return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t at) {
    static auto real = next<ssize_t (*)(int, const void*, size_t, off64_t)>("pwrite64");
    if (disk_full()) {
        errno = ENOSPC;
        return -1;
    }
    return real(fd, buf, n, at);
}

int fsync(int fd) {
    static auto real = next<int (*)(int)>("fsync");
    if (disk_full()) {
        errno = ENOSPC;
        return -1;
    }
    return real(fd);
}

int fdatasync(int fd) {
    static auto real = next<int (*)(int)>("fdatasync");
    if (disk_full()) {
        errno = ENOSPC;
        return -1;
    }
    return real(fd);
}
}
