// The record: the one encoding of a data access request (docs/formats.md, "Record").
//
// The same bytes are what the source journal holds, what goes on the wire, what the
// destination's log holds and what the applier reads; nothing re-encodes a record.
//
//   offset size field
//   0      4    length        whole record in bytes, header included
//   4      4    masked crc    CRC32C of bytes [8, length), masked (crc32c::Mask)
//   8      2    type          RecordType; 0 is never valid (zeroed space reads as "end")
//   10     2    flags         0 in format version 1
//   12     4    reserved      0
//   16     8    seq           sequence number, per source and epoch
//   24     8    epoch         the source's epoch (raised by a promote)
//   32     8    timestamp_ns  CLOCK_REALTIME when the request was made
//   40     ...  payload       the op's fields, in the order its Visit() lists them
//
// Decoding never trusts the bytes: every length, type, time, mode and path is checked
// and an error names the field and its byte offset in the record.
//
// Thread-safety: all functions are pure; an EncodedRecord is owned by one thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "common/status.h"

namespace mirror::common {

inline constexpr uint32_t kRecordFormatVersion = 1;
inline constexpr size_t kRecordHeaderSize = 40;
inline constexpr size_t kRecordCrcOffset = 4;
inline constexpr size_t kRecordCrcStart = 8;  // the CRC covers [8, length)
inline constexpr uint32_t kMaxPathBytes = 4095;       // PATH_MAX without its NUL
inline constexpr uint32_t kMaxXattrNameBytes = 255;   // XATTR_NAME_MAX
inline constexpr uint32_t kMaxXattrValueBytes = 65536;  // XATTR_SIZE_MAX
inline constexpr uint32_t kMaxWriteBytes = 16u << 20;
// Large enough for a 1 MiB FUSE write with two maximal paths; configurable per decoder.
inline constexpr uint32_t kDefaultMaxRecordBytes = (1u << 20) + 64 * 1024;

enum class RecordType : uint16_t {
  kWrite = 1,
  kTruncate = 2,
  kFallocate = 3,
  kCreate = 4,
  kMknod = 5,
  kMkdir = 6,
  kSymlink = 7,
  kLink = 8,
  kUnlink = 9,
  kRmdir = 10,
  kRename = 11,
  kChmod = 12,
  kChown = 13,
  kUtimens = 14,
  kSetxattr = 15,
  kRemovexattr = 16,
  kCheckpoint = 17,  // a consistency point marker; applies as a no-op
  // Never stored in a header: the type a voided record decodes to (see VoidOp).
  kVoid = 0x8000,
};
inline constexpr uint16_t kMaxRecordType = 17;

std::string_view RecordTypeName(RecordType type);  // "write", "rename", ...

// A point in time as the kernel keeps it. For optional times (utimens), nsec ==
// kTimeOmit means "leave unchanged".
struct Timespec {
  int64_t sec = 0;
  uint32_t nsec = 0;
  friend bool operator==(const Timespec&, const Timespec&) = default;
};
inline constexpr uint32_t kTimeOmit = 0xffffffffu;

// rename(2) flags as recorded; RENAME_WHITEOUT is never valid in a record.
inline constexpr uint32_t kRenameNoReplace = 1u << 0;  // == RENAME_NOREPLACE
inline constexpr uint32_t kRenameExchange = 1u << 1;   // == RENAME_EXCHANGE
// uid/gid value meaning "unchanged" in a chown record, as in chown(2).
inline constexpr uint32_t kIdUnchanged = 0xffffffffu;

// Paths are relative to the volume root, '/'-separated, with no empty, "." or ".."
// component, no NUL, at most kMaxPathBytes. An "entry path" names a directory entry
// (it has a last component); a "node path" may also be "." for the volume root.
//
// Each op lists its fields once, in Visit(); encoding, sizing and decoding all walk
// that list. At most one field is Bulk (large bytes copied without staging), and it
// is the last one.
struct WriteOp {
  static constexpr RecordType kType = RecordType::kWrite;
  std::string_view path;
  uint64_t offset = 0;
  Timespec mtime;  // the file's mtime after the write
  std::string_view data;
  template <class V> void Visit(V& v) {
    v.EntryPath(path, "path"); v.U64(offset, "offset"); v.Time(mtime, "mtime");
    v.Bulk(data, "data", kMaxWriteBytes);
  }
};
struct TruncateOp {
  static constexpr RecordType kType = RecordType::kTruncate;
  std::string_view path;
  uint64_t size = 0;
  Timespec mtime;
  template <class V> void Visit(V& v) {
    v.EntryPath(path, "path"); v.U64(size, "size"); v.Time(mtime, "mtime");
  }
};
struct FallocateOp {
  static constexpr RecordType kType = RecordType::kFallocate;
  std::string_view path;
  uint32_t mode = 0;  // 0 or FALLOC_FL_KEEP_SIZE | PUNCH_HOLE | ZERO_RANGE
  uint64_t offset = 0;
  uint64_t length = 0;
  Timespec mtime;
  template <class V> void Visit(V& v) {
    v.EntryPath(path, "path"); v.U32(mode, "mode"); v.U64(offset, "offset");
    v.U64(length, "length"); v.Time(mtime, "mtime");
  }
};
// Node-creating ops carry the new node's owner, mode and mtime, and the parent
// directory's mtime after the change, so the image's times match the source's.
struct CreateOp {
  static constexpr RecordType kType = RecordType::kCreate;
  std::string_view path;
  uint32_t mode = 0;  // S_IFREG | permission bits
  uint32_t uid = 0, gid = 0;
  Timespec mtime, parent_mtime;
  template <class V> void Visit(V& v) {
    v.EntryPath(path, "path"); v.U32(mode, "mode"); v.U32(uid, "uid"); v.U32(gid, "gid");
    v.Time(mtime, "mtime"); v.Time(parent_mtime, "parent_mtime");
  }
};
struct MknodOp {
  static constexpr RecordType kType = RecordType::kMknod;
  std::string_view path;
  uint32_t mode = 0;  // S_IFIFO, S_IFSOCK, S_IFCHR or S_IFBLK | permission bits
  uint64_t rdev = 0;
  uint32_t uid = 0, gid = 0;
  Timespec mtime, parent_mtime;
  template <class V> void Visit(V& v) {
    v.EntryPath(path, "path"); v.U32(mode, "mode"); v.U64(rdev, "rdev"); v.U32(uid, "uid");
    v.U32(gid, "gid"); v.Time(mtime, "mtime"); v.Time(parent_mtime, "parent_mtime");
  }
};
struct MkdirOp {
  static constexpr RecordType kType = RecordType::kMkdir;
  std::string_view path;
  uint32_t mode = 0;  // S_IFDIR | permission bits
  uint32_t uid = 0, gid = 0;
  Timespec mtime, parent_mtime;
  template <class V> void Visit(V& v) {
    v.EntryPath(path, "path"); v.U32(mode, "mode"); v.U32(uid, "uid"); v.U32(gid, "gid");
    v.Time(mtime, "mtime"); v.Time(parent_mtime, "parent_mtime");
  }
};
struct SymlinkOp {
  static constexpr RecordType kType = RecordType::kSymlink;
  std::string_view path;
  uint32_t uid = 0, gid = 0;
  Timespec mtime, parent_mtime;
  std::string_view target;  // stored as is; never resolved by apply
  template <class V> void Visit(V& v) {
    v.EntryPath(path, "path"); v.U32(uid, "uid"); v.U32(gid, "gid"); v.Time(mtime, "mtime");
    v.Time(parent_mtime, "parent_mtime"); v.LinkTarget(target, "target");
  }
};
struct LinkOp {
  static constexpr RecordType kType = RecordType::kLink;
  std::string_view path;      // existing entry
  std::string_view new_path;  // new entry for the same inode
  Timespec new_parent_mtime;
  template <class V> void Visit(V& v) {
    v.EntryPath(path, "path"); v.EntryPath(new_path, "new_path");
    v.Time(new_parent_mtime, "new_parent_mtime");
  }
};
struct UnlinkOp {
  static constexpr RecordType kType = RecordType::kUnlink;
  std::string_view path;
  Timespec parent_mtime;
  template <class V> void Visit(V& v) { v.EntryPath(path, "path"); v.Time(parent_mtime, "parent_mtime"); }
};
struct RmdirOp {
  static constexpr RecordType kType = RecordType::kRmdir;
  std::string_view path;
  Timespec parent_mtime;
  template <class V> void Visit(V& v) { v.EntryPath(path, "path"); v.Time(parent_mtime, "parent_mtime"); }
};
struct RenameOp {
  static constexpr RecordType kType = RecordType::kRename;
  std::string_view path;
  std::string_view new_path;
  uint32_t flags = 0;  // 0, kRenameNoReplace or kRenameExchange
  Timespec parent_mtime, new_parent_mtime;
  template <class V> void Visit(V& v) {
    v.EntryPath(path, "path"); v.EntryPath(new_path, "new_path"); v.U32(flags, "flags");
    v.Time(parent_mtime, "parent_mtime"); v.Time(new_parent_mtime, "new_parent_mtime");
  }
};
struct ChmodOp {
  static constexpr RecordType kType = RecordType::kChmod;
  std::string_view path;
  uint32_t mode = 0;  // permission bits only (07777)
  template <class V> void Visit(V& v) { v.NodePath(path, "path"); v.U32(mode, "mode"); }
};
struct ChownOp {
  static constexpr RecordType kType = RecordType::kChown;
  std::string_view path;
  uint32_t uid = kIdUnchanged, gid = kIdUnchanged;
  uint32_t mode = 0;  // permission bits after the chown (it may clear setuid/setgid)
  template <class V> void Visit(V& v) {
    v.NodePath(path, "path"); v.U32(uid, "uid"); v.U32(gid, "gid"); v.U32(mode, "mode");
  }
};
struct UtimensOp {
  static constexpr RecordType kType = RecordType::kUtimens;
  std::string_view path;
  Timespec atime{0, kTimeOmit}, mtime{0, kTimeOmit};  // resolved times; UTIME_NOW never appears
  template <class V> void Visit(V& v) {
    v.NodePath(path, "path"); v.OptionalTime(atime, "atime"); v.OptionalTime(mtime, "mtime");
  }
};
struct SetxattrOp {
  static constexpr RecordType kType = RecordType::kSetxattr;
  std::string_view path;
  std::string_view name;
  std::string_view value;
  template <class V> void Visit(V& v) {
    v.NodePath(path, "path"); v.XattrName(name, "name"); v.Bulk(value, "value", kMaxXattrValueBytes);
  }
};
struct RemovexattrOp {
  static constexpr RecordType kType = RecordType::kRemovexattr;
  std::string_view path;
  std::string_view name;
  template <class V> void Visit(V& v) { v.NodePath(path, "path"); v.XattrName(name, "name"); }
};
struct CheckpointOp {
  static constexpr RecordType kType = RecordType::kCheckpoint;
  template <class V> void Visit(V&) {}
};
// A voided record: one that was journaled before its change was tried on the source, and
// whose change then failed there. It keeps its place (seq, length) and applies as a
// no-op. On disk it is the original record with its stored CRC inverted
// (~Mask(crc)), so that voiding is a single aligned 4-byte store that no crash can tear.
// Its payload is not interpreted.
struct VoidOp {
  static constexpr RecordType kType = RecordType::kVoid;
  RecordType original = RecordType::kCheckpoint;  // the header's type, kept as it was
  std::string_view payload;
  template <class V> void Visit(V& v) { v.Opaque(payload, "payload"); }
};

// Alternatives 0..16 are the stored types 1..17, in order; VoidOp comes last.
using Op = std::variant<WriteOp, TruncateOp, FallocateOp, CreateOp, MknodOp, MkdirOp, SymlinkOp,
                        LinkOp, UnlinkOp, RmdirOp, RenameOp, ChmodOp, ChownOp, UtimensOp,
                        SetxattrOp, RemovexattrOp, CheckpointOp, VoidOp>;

RecordType TypeOf(const Op& op);

struct RecordMeta {
  uint64_t seq = 0;
  uint64_t epoch = 0;
  int64_t timestamp_ns = 0;
  friend bool operator==(const RecordMeta&, const RecordMeta&) = default;
};

// The fixed header as decoded.
struct RecordHeader {
  uint32_t length = 0;
  uint32_t masked_crc = 0;
  RecordType type{};
  RecordMeta meta;
};

// A decoded record. Its string_views point into the bytes it was decoded from.
struct Record {
  RecordMeta meta;
  Op op;
  RecordType type() const { return TypeOf(op); }
};

// Builds the bytes of one record in two pieces: `head` (header and every field but
// the bulk bytes, staged in a reusable buffer) and the bulk bytes, referenced where
// they lie. A writer copies both pieces (memcpy, pwritev) so bulk data is copied once.
//
//   EncodedRecord rec;                 // reuse per thread: the buffer keeps its capacity
//   MIRROR_RETURN_IF_ERROR(rec.Build(op));   // validates the op
//   rec.Seal(meta);                    // stamps seq/epoch/time and the CRC
//   write(rec.head()); write(rec.bulk());
//
// The op's views must outlive the EncodedRecord's use.
class EncodedRecord {
 public:
  Status Build(const Op& op);
  void Seal(const RecordMeta& meta);

  size_t size() const { return head_.size() + bulk_.size(); }
  std::string_view head() const { return head_; }
  std::string_view bulk() const { return bulk_; }
  void CopyTo(char* out) const;  // writes size() bytes
  std::string ToBytes() const;

 private:
  std::string head_;
  std::string_view bulk_;
  bool voided_ = false;  // built from a VoidOp: Seal stores the inverted CRC
};

// The stored CRC of a voided record whose real CRC is `crc`.
inline constexpr uint32_t VoidedCrc(uint32_t masked_crc) { return ~masked_crc; }

// One call for tests and tools: the whole record as a string.
Result<std::string> EncodeRecord(const RecordMeta& meta, const Op& op);

struct DecodeLimits {
  uint32_t max_record_bytes = kDefaultMaxRecordBytes;
};

// Reads the fixed header at the start of `bytes` and checks what the header alone
// can tell: a length between the header size and the limit, a known type, zero flags.
// It does not need the whole record and does not check the CRC. A type of 0 reads as
// Corruption("... type 0 (end of data)"); containers use IsEndMarker() to tell.
Result<RecordHeader> DecodeHeader(std::string_view bytes, const DecodeLimits& limits = {});

// Decodes and validates the record at the start of `bytes`: header, CRC, every
// field. `bytes` may extend past the record; header.length says where it ends. A
// record whose stored CRC is VoidedCrc(the right one) decodes as a VoidOp.
Result<Record> DecodeRecord(std::string_view bytes, const DecodeLimits& limits = {});

// True when the 4 bytes at `bytes` (or fewer, at the end) are zero: preallocated,
// never-written space, read as the end of data rather than as damage.
bool IsEndMarker(std::string_view bytes);

// Path rules, shared with apply and anything else that takes a record path.
Status CheckEntryPath(std::string_view path);
Status CheckNodePath(std::string_view path);  // as CheckEntryPath, or exactly "."

}  // namespace mirror::common
