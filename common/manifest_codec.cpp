// Manifest entries as bytes (docs/formats.md, "Manifest entries") and back.
#include <sys/stat.h>

#include <cassert>
#include <string>

#include "common/endian.h"
#include "common/manifest.h"
#include "common/quote.h"
#include "common/record.h"

namespace mirror::common {
namespace {

void AppendString(std::string* out, std::string_view s) {
  AppendLE<uint32_t>(*out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

bool KnownType(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

// Reads the fields of entry `index`, which occupies [pos, end) of `bytes`. The first
// failure sticks: later reads do nothing, and status() names the entry, field and byte.
class EntryReader {
 public:
  EntryReader(std::string_view bytes, size_t pos, size_t end, size_t index)
      : bytes_(bytes), pos_(pos), end_(end), index_(index) {}

  template <class T>
  void Int(T* v, const char* field) {
    if (!Need(sizeof(T), field)) return;
    *v = LoadLE<T>(bytes_.data() + pos_);
    pos_ += sizeof(T);
  }

  void String(std::string* s, const char* field, size_t max) {
    const size_t at = pos_;
    uint32_t len = 0;
    Int(&len, field);
    if (!status_.ok()) return;
    if (len > max) {
      Fail(field, at,
           "length " + std::to_string(len) + " exceeds the limit " + std::to_string(max));
      return;
    }
    if (!Need(len, field)) return;
    s->assign(bytes_.data() + pos_, len);
    pos_ += len;
  }

  // A check on a field already read, which starts at byte `at`.
  void Check(bool ok, const char* field, size_t at, const std::string& why) {
    if (status_.ok() && !ok) Fail(field, at, why);
  }

  bool ok() const { return status_.ok(); }
  size_t pos() const { return pos_; }
  const Status& status() const { return status_; }

  void Fail(const char* field, size_t at, const std::string& why) {
    if (!status_.ok()) return;
    status_ = Status::Corruption("manifest entry " + std::to_string(index_) + ": field " +
                                 QuoteForMessage(field, '\'') + " at byte " + std::to_string(at) +
                                 ": " + why);
  }

 private:
  bool Need(size_t n, const char* field) {
    if (!status_.ok()) return false;
    if (end_ - pos_ < n) {
      Fail(field, pos_,
           "needs " + std::to_string(n) + " bytes, the entry has " + std::to_string(end_ - pos_) +
               " left");
      return false;
    }
    return true;
  }

  std::string_view bytes_;
  size_t pos_;
  size_t end_;
  size_t index_;
  Status status_;
};

void ReadXattrs(EntryReader& r, ManifestEntry* e) {
  const size_t count_at = r.pos();
  uint32_t count = 0;
  r.Int(&count, "xattr_count");
  r.Check(count <= kManifestMaxXattrs, "xattr_count", count_at,
          std::to_string(count) + " exceeds the limit " + std::to_string(kManifestMaxXattrs));
  // No reserve(count): a lying count must not allocate; each pair is checked as it comes.
  for (uint32_t i = 0; i < count && r.ok(); ++i) {
    const size_t name_at = r.pos();
    std::string name, value;
    r.String(&name, "xattr_name", kMaxXattrNameBytes);
    r.Check(!name.empty(), "xattr_name", name_at, "empty name");
    r.Check(e->xattrs.empty() || e->xattrs.back().first < name, "xattr_name", name_at,
            "names not sorted or repeated");
    r.String(&value, "xattr_value", kMaxXattrValueBytes);
    if (r.ok()) e->xattrs.emplace_back(std::move(name), std::move(value));
  }
}

// Decodes the entry whose fields occupy [pos, end) of `bytes`.
Result<ManifestEntry> DecodeEntry(std::string_view bytes, size_t pos, size_t end, size_t index) {
  EntryReader r(bytes, pos, end, index);
  ManifestEntry e;
  const size_t path_at = r.pos();
  r.String(&e.path, "path", kMaxPathBytes);
  if (r.ok()) {
    Status path_ok = CheckEntryPath(e.path);
    r.Check(path_ok.ok(), "path", path_at, path_ok.message());
  }
  const size_t mode_at = r.pos();
  r.Int(&e.mode, "mode");
  r.Check(KnownType(e.mode), "mode", mode_at,
          "unknown file type in mode " + std::to_string(e.mode));
  r.Int(&e.uid, "uid");
  r.Int(&e.gid, "gid");
  r.Int(&e.size, "size");
  r.Int(&e.mtime_ns, "mtime_ns");
  r.Int(&e.rdev, "rdev");
  r.Int(&e.nlink, "nlink");
  const size_t link_at = r.pos();
  r.String(&e.link_to, "link_to", kMaxPathBytes);
  if (r.ok() && !e.link_to.empty()) {
    Status link_ok = CheckEntryPath(e.link_to);
    r.Check(link_ok.ok(), "link_to", link_at, link_ok.message());
  }
  r.String(&e.target, "target", kMaxPathBytes);
  ReadXattrs(r, &e);
  const size_t hash_at = r.pos();
  r.String(&e.content_hash, "content_hash", kManifestHashBytes);
  r.Check(e.content_hash.empty() || e.content_hash.size() == kManifestHashBytes, "content_hash",
          hash_at, "length " + std::to_string(e.content_hash.size()) + ", not 0 or 32");
  if (r.ok() && r.pos() != end) {
    r.Fail("entry_length", pos - 4,
           std::to_string(end - pos) + " bytes, but the fields end after " +
               std::to_string(r.pos() - pos));
  }
  if (!r.ok()) return r.status();
  return e;
}

}  // namespace

void EncodeManifestEntries(std::span<const ManifestEntry> entries, std::string* out) {
  for (const ManifestEntry& e : entries) {
    assert(e.path.size() <= kMaxPathBytes && e.xattrs.size() <= kManifestMaxXattrs);
    const size_t start = out->size();
    AppendLE<uint32_t>(*out, 0);  // entry_length, filled in below
    AppendString(out, e.path);
    AppendLE<uint32_t>(*out, e.mode);
    AppendLE<uint32_t>(*out, e.uid);
    AppendLE<uint32_t>(*out, e.gid);
    AppendLE<uint64_t>(*out, e.size);
    AppendLE<int64_t>(*out, e.mtime_ns);
    AppendLE<uint64_t>(*out, e.rdev);
    AppendLE<uint32_t>(*out, e.nlink);
    AppendString(out, e.link_to);
    AppendString(out, e.target);
    AppendLE<uint32_t>(*out, static_cast<uint32_t>(e.xattrs.size()));
    for (const auto& [name, value] : e.xattrs) {
      AppendString(out, name);
      AppendString(out, value);
    }
    AppendString(out, e.content_hash);
    StoreLE<uint32_t>(out->data() + start, static_cast<uint32_t>(out->size() - start - 4));
  }
}

Result<Manifest> DecodeManifestEntries(std::string_view bytes) {
  Manifest out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t index = out.size();
    const std::string prefix = "manifest entry " + std::to_string(index) +
                               ": field 'entry_length' at byte " + std::to_string(pos) + ": ";
    if (bytes.size() - pos < 4)
      return Status::Corruption(prefix + "needs 4 bytes, " + std::to_string(bytes.size() - pos) +
                                " left (trailing bytes)");
    const uint32_t length = LoadLE<uint32_t>(bytes.data() + pos);
    if (length > bytes.size() - pos - 4)
      return Status::Corruption(prefix + std::to_string(length) + " bytes, but " +
                                std::to_string(bytes.size() - pos - 4) + " left");
    MIRROR_ASSIGN_OR_RETURN(ManifestEntry e, DecodeEntry(bytes, pos + 4, pos + 4 + length, index));
    out.push_back(std::move(e));
    pos += 4 + size_t{length};
  }
  return out;
}

}  // namespace mirror::common
