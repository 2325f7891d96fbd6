// An SQLite VFS for tests that passes everything to the default VFS, except that writes and
// syncs fail while `failing` is set: a disk that fills up, or goes read-only, and comes back.
#pragma once

#include <sqlite3.h>

#include <atomic>

namespace cb::testing {

class FaultyVfs {
  public:
    static constexpr const char* kName = "commbroker-test-faulty";
    /// Registers the VFS once (not as the default); returns its name.
    static const char* install();
    static inline std::atomic<bool> failing{false};
    static inline std::atomic<int> refused{0};  ///< writes and syncs refused so far

  private:
    struct File {
        sqlite3_file base;
        sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
    };
    static File* of(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
    static int open(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* out);
};

inline int FaultyVfs::open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags,
                           int* out) {
    static const sqlite3_io_methods methods = {
        3,
        [](sqlite3_file* f) { return of(f)->real()->pMethods->xClose(of(f)->real()); },
        [](sqlite3_file* f, void* p, int n, sqlite3_int64 at) {
            return of(f)->real()->pMethods->xRead(of(f)->real(), p, n, at);
        },
        [](sqlite3_file* f, const void* p, int n, sqlite3_int64 at) {
            if (failing.load()) {
                ++refused;
                return SQLITE_FULL;
            }
            return of(f)->real()->pMethods->xWrite(of(f)->real(), p, n, at);
        },
        [](sqlite3_file* f, sqlite3_int64 size) {
            return of(f)->real()->pMethods->xTruncate(of(f)->real(), size);
        },
        [](sqlite3_file* f, int flags) {
            if (failing.load()) {
                ++refused;
                return SQLITE_IOERR_FSYNC;
            }
            return of(f)->real()->pMethods->xSync(of(f)->real(), flags);
        },
        [](sqlite3_file* f, sqlite3_int64* size) {
            return of(f)->real()->pMethods->xFileSize(of(f)->real(), size);
        },
        [](sqlite3_file* f, int lock) {
            return of(f)->real()->pMethods->xLock(of(f)->real(), lock);
        },
        [](sqlite3_file* f, int lock) {
            return of(f)->real()->pMethods->xUnlock(of(f)->real(), lock);
        },
        [](sqlite3_file* f, int* out) {
            return of(f)->real()->pMethods->xCheckReservedLock(of(f)->real(), out);
        },
        [](sqlite3_file* f, int op, void* arg) {
            return of(f)->real()->pMethods->xFileControl(of(f)->real(), op, arg);
        },
        [](sqlite3_file* f) { return of(f)->real()->pMethods->xSectorSize(of(f)->real()); },
        [](sqlite3_file* f) {
            return of(f)->real()->pMethods->xDeviceCharacteristics(of(f)->real());
        },
        [](sqlite3_file* f, int page, int size, int extend, void volatile** p) {
            return of(f)->real()->pMethods->xShmMap(of(f)->real(), page, size, extend, p);
        },
        [](sqlite3_file* f, int offset, int n, int flags) {
            return of(f)->real()->pMethods->xShmLock(of(f)->real(), offset, n, flags);
        },
        [](sqlite3_file* f) { of(f)->real()->pMethods->xShmBarrier(of(f)->real()); },
        [](sqlite3_file* f, int remove) {
            return of(f)->real()->pMethods->xShmUnmap(of(f)->real(), remove);
        },
        [](sqlite3_file* f, sqlite3_int64 at, int n, void** p) {
            return of(f)->real()->pMethods->xFetch(of(f)->real(), at, n, p);
        },
        [](sqlite3_file* f, sqlite3_int64 at, void* p) {
            return of(f)->real()->pMethods->xUnfetch(of(f)->real(), at, p);
        },
    };
    auto* base = static_cast<sqlite3_vfs*>(vfs->pAppData);
    auto* mine = of(file);
    mine->base.pMethods = nullptr;
    int rc = base->xOpen(base, name, mine->real(), flags, out);
    if (mine->real()->pMethods) mine->base.pMethods = &methods;
    return rc;
}

inline const char* FaultyVfs::install() {
    static sqlite3_vfs vfs;
    static bool installed = [] {
        sqlite3_vfs* base = sqlite3_vfs_find(nullptr);
        vfs = *base;
        vfs.szOsFile = static_cast<int>(sizeof(File)) + base->szOsFile;
        vfs.zName = kName;
        vfs.pAppData = base;
        vfs.xOpen = &FaultyVfs::open;
        vfs.pNext = nullptr;
        return sqlite3_vfs_register(&vfs, 0) == SQLITE_OK;
    }();
    return installed ? kName : nullptr;
}

}  // namespace cb::testing
