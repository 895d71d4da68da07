// Message bodies of the LMDB store: inline or file-backed blobs, reference
// counts, staging files and the orphan sweep.

#include "common/store/lmdb_internal.h"

namespace yubin::store::lmdb_detail {

std::string encode_blob_ref(const BlobRef& b) {
    Encoder e;
    e.u8(kRecordVersion).u32(b.refcount).u64(b.size).str(b.file);
    return e.take();
}

Result<BlobRef> decode_blob_ref(std::string_view v) {
    Decoder d(v);
    BlobRef b;
    d.u8();
    b.refcount = d.u32();
    b.size = d.u64();
    b.file = d.str();
    if (!d.ok()) {
        return fail(ErrorCode::Internal, "corrupt blob record");
    }
    return b;
}

std::string blob_file_path(const std::string& root, std::string_view name) {
    return fmt::format("{}/blobs/{}/{}", root, name.substr(0, 2), name);
}

Result<void> fsync_path(const std::string& path, bool directory) {
    int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        return fail(ErrorCode::Io, fmt::format("open {}: {}", path, std::strerror(errno)));
    }
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) {
        return fail(ErrorCode::Io, fmt::format("fsync {}: {}", path, std::strerror(err)));
    }
    return {};
}

Result<std::string> random_name() {
    unsigned char bytes[16];
    size_t got = 0;
    while (got < sizeof(bytes)) {
        ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail(ErrorCode::Io, "getrandom failed");
        }
        got += static_cast<size_t>(n);
    }
    std::string out;
    for (unsigned char b : bytes) {
        out += fmt::format("{:02x}", b);
    }
    return out;
}

// Writes and fsyncs the body file; the caller fsyncs its directory before the
// LMDB commit that references it.
Result<void> write_file(const std::string& path, std::string_view data) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        return fail(ErrorCode::Io, fmt::format("create {}: {}", path, std::strerror(errno)));
    }
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int err = errno;
            ::close(fd);
            ::unlink(path.c_str());
            return fail(ErrorCode::Io, fmt::format("write {}: {}", path, std::strerror(err)));
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
        int err = errno;
        ::close(fd);
        ::unlink(path.c_str());
        return fail(ErrorCode::Io, fmt::format("fsync {}: {}", path, std::strerror(err)));
    }
    ::close(fd);
    return {};
}

Result<std::string> read_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return fail(ErrorCode::Io, fmt::format("open {}: {}", path, std::strerror(errno)));
    }
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int err = errno;
            ::close(fd);
            return fail(ErrorCode::Io, fmt::format("read {}: {}", path, std::strerror(err)));
        }
        if (n == 0) {
            break;
        }
        out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
}

Result<void> make_dir(const std::string& path) {
    if (::mkdir(path.c_str(), 0770) != 0 && errno != EEXIST) {
        return fail(ErrorCode::Io, fmt::format("mkdir {}: {}", path, std::strerror(errno)));
    }
    return {};
}

Result<BlobRef> load_blob_ref(Tx& tx, uint64_t blob_id) {
    auto v = tx.get(tx.t->blob_refs, codec::be64_key(blob_id));
    if (!v) {
        return fail(v.error());
    }
    if (!*v) {
        return fail(ErrorCode::NotFound, fmt::format("no blob {}", blob_id));
    }
    return decode_blob_ref(**v);
}

// Stores a body once with refcount 0; references are added per message/queue
// entry. The body is inline unless the writer staged it as a file.
Result<uint64_t> store_blob(WriteCtx& tx, std::string_view body, std::string_view structure) {
    auto id = next_counter(tx, "next_blob_id");
    if (!id) {
        return fail(id.error());
    }
    std::string key = codec::be64_key(*id);
    BlobRef ref;
    ref.size = body.size();
    ref.file = tx.staged_file;
    YUBIN_TRY(tx.put(tx.t->blob_refs, key, encode_blob_ref(ref)));
    if (ref.file.empty()) {
        YUBIN_TRY(tx.put(tx.t->blob_data, key, body));
    } else {
        YUBIN_TRY(tx.put(tx.t->blob_files, ref.file, key));
    }
    if (!structure.empty()) {
        YUBIN_TRY(tx.put(tx.t->structure, key, structure));
    }
    return *id;
}

// Adjusts a body's reference count; at 0 the body, its structure and (after
// the commit) its file go away.
Result<void> blob_adjust(WriteCtx& tx, uint64_t blob_id, int delta) {
    auto ref = load_blob_ref(tx, blob_id);
    if (!ref) {
        return fail(ref.error());
    }
    int64_t count = static_cast<int64_t>(ref->refcount) + delta;
    std::string key = codec::be64_key(blob_id);
    if (count > 0) {
        ref->refcount = static_cast<uint32_t>(count);
        return tx.put(tx.t->blob_refs, key, encode_blob_ref(*ref));
    }
    YUBIN_TRY(tx.del(tx.t->blob_refs, key));
    YUBIN_TRY(tx.del(tx.t->blob_data, key));
    YUBIN_TRY(tx.del(tx.t->structure, key));
    if (!ref->file.empty()) {
        YUBIN_TRY(tx.del(tx.t->blob_files, ref->file));
        tx.unlink_after_commit.push_back(ref->file);
    }
    return {};
}

// Reads a body (inline or file) into out.
Result<void> append_blob(Tx& tx, const std::string& root, uint64_t blob_id, std::string& out) {
    auto ref = load_blob_ref(tx, blob_id);
    if (!ref) {
        return fail(ref.error());
    }
    if (!ref->file.empty()) {
        auto data = read_file(blob_file_path(root, ref->file));
        if (!data) {
            return fail(data.error());
        }
        out.append(*data);
        return {};
    }
    auto v = tx.get(tx.t->blob_data, codec::be64_key(blob_id));
    if (!v) {
        return fail(v.error());
    }
    if (!*v) {
        return fail(ErrorCode::Internal, fmt::format("blob {} has no data", blob_id));
    }
    out.append(**v);
    return {};
}

void LmdbStore::sweep_orphan_files() {
    time_t cutoff = ::time(nullptr) - kOrphanAgeSeconds;
    for (int i = 0; i < 256; ++i) {
        std::string dir = fmt::format("{}/blobs/{:02x}", options_.path, i);
        std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
        if (!d) {
            continue;
        }
        std::vector<std::string> old;
        while (dirent* e = ::readdir(d.get())) {
            std::string name = e->d_name;
            if (name.size() != 32) {
                continue;
            }
            struct stat st {};
            if (::stat((dir + "/" + name).c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
                st.st_mtime < cutoff) {
                old.push_back(name);
            }
        }
        for (const auto& name : old) {
            auto referenced = read<bool>([&](Tx& tx) -> Result<bool> {
                auto v = tx.get(tx.t->blob_files, name);
                if (!v) {
                    return fail(v.error());
                }
                return v->has_value();
            });
            if (referenced && !*referenced) {
                ::unlink((dir + "/" + name).c_str());
            }
        }
    }
}

}  // namespace yubin::store::lmdb_detail
