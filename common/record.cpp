#include "common/record.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <cstring>
#include <limits>

#include "common/crc32c.h"
#include "common/endian.h"
#include "common/quote.h"

namespace mirror::common {
namespace {

constexpr uint64_t kMaxFileOffset = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

std::string Quote(std::string_view name) { return QuoteForMessage(name, '\''); }

Status CheckPathComponents(std::string_view path) {
  if (path.empty()) return Status::InvalidArgument("path is empty");
  if (path.size() > kMaxPathBytes) {
    return Status::InvalidArgument("path is " + std::to_string(path.size()) +
                                   " bytes, longer than PATH_MAX-1 (" +
                                   std::to_string(kMaxPathBytes) + ")");
  }
  if (size_t nul = path.find('\0'); nul != std::string_view::npos) {
    return Status::InvalidArgument("path contains a NUL at byte " + std::to_string(nul));
  }
  if (path.front() == '/') return Status::InvalidArgument("path is absolute");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    const char* bad = part.empty() ? "an empty" : part == "." ? "a '.'" : part == ".." ? "a '..'" : nullptr;
    if (bad != nullptr) {
      return Status::InvalidArgument(std::string("path has ") + bad + " component at byte " +
                                     std::to_string(start));
    }
    start = end + 1;
  }
  return {};
}

Status CheckTime(const Timespec& t, bool optional) {
  if (t.nsec < 1000000000u || (optional && t.nsec == kTimeOmit)) return {};
  return Status::InvalidArgument("nanoseconds " + std::to_string(t.nsec) + " out of range");
}

Status CheckBytes(std::string_view bytes, uint32_t max, bool allow_empty, bool allow_nul) {
  if (!allow_empty && bytes.empty()) return Status::InvalidArgument("is empty");
  if (bytes.size() > max) {
    return Status::InvalidArgument("is " + std::to_string(bytes.size()) + " bytes, more than " +
                                   std::to_string(max));
  }
  if (!allow_nul && bytes.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument("contains a NUL at byte " + std::to_string(bytes.find('\0')));
  }
  return {};
}

// Field rules, shared by the encoder and the decoder: one place for each fact.
struct FieldRules {
  static Status EntryPath(std::string_view p) { return CheckEntryPath(p); }
  static Status NodePath(std::string_view p) { return CheckNodePath(p); }
  static Status LinkTarget(std::string_view t) { return CheckBytes(t, kMaxPathBytes, false, false); }
  static Status XattrName(std::string_view n) { return CheckBytes(n, kMaxXattrNameBytes, false, false); }
};

// Rules that involve more than one field, or a field's meaning.
template <class T>
Status CheckOp(const T&) { return {}; }

Status CheckMode(uint32_t mode, std::initializer_list<uint32_t> types) {
  for (uint32_t t : types) {
    if ((mode & S_IFMT) == t && (mode & ~(S_IFMT | 07777u)) == 0) return {};
  }
  return Status::InvalidArgument("mode 0" + std::to_string(mode) + " has a wrong file type or bits");
}
Status CheckPermissionBits(uint32_t mode) {
  if ((mode & ~07777u) == 0) return {};
  return Status::InvalidArgument("mode has bits beyond 07777");
}
Status CheckRange(uint64_t offset, uint64_t length) {
  if (offset > kMaxFileOffset || length > kMaxFileOffset - offset) {
    return Status::InvalidArgument("offset + length passes the largest file offset");
  }
  return {};
}

Status CheckOp(const WriteOp& op) { return CheckRange(op.offset, op.data.size()); }
Status CheckOp(const TruncateOp& op) { return CheckRange(op.size, 0); }
Status CheckOp(const FallocateOp& op) {
  constexpr uint32_t kKnown = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  if ((op.mode & ~kKnown) != 0) return Status::InvalidArgument("fallocate mode has unknown bits");
  if ((op.mode & FALLOC_FL_PUNCH_HOLE) && (op.mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE))) {
    return Status::InvalidArgument("punch hole must come with keep size and nothing else");
  }
  if (op.length == 0) return Status::InvalidArgument("fallocate length is 0");
  return CheckRange(op.offset, op.length);
}
Status CheckOp(const CreateOp& op) { return CheckMode(op.mode, {S_IFREG}); }
Status CheckOp(const MknodOp& op) { return CheckMode(op.mode, {S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK}); }
Status CheckOp(const MkdirOp& op) { return CheckMode(op.mode, {S_IFDIR}); }
Status CheckOp(const ChmodOp& op) { return CheckPermissionBits(op.mode); }
Status CheckOp(const ChownOp& op) { return CheckPermissionBits(op.mode); }
Status CheckOp(const RenameOp& op) {
  if (op.flags == 0 || op.flags == kRenameNoReplace || op.flags == kRenameExchange) return {};
  return Status::InvalidArgument("rename flags " + std::to_string(op.flags) + " are not 0, NOREPLACE or EXCHANGE");
}

// Writes fields: fixed ones into `head`, the bulk field's bytes referenced.
class Encoder {
 public:
  explicit Encoder(std::string& head) : head_(head) {}
  void U32(uint32_t v, const char*) { if (Ok()) AppendLE(head_, v); }
  void U64(uint64_t v, const char*) { if (Ok()) AppendLE(head_, v); }
  void Time(const Timespec& t, const char* name) { Timed(t, false, name); }
  void OptionalTime(const Timespec& t, const char* name) { Timed(t, true, name); }
  void EntryPath(std::string_view p, const char* name) { Bytes(p, FieldRules::EntryPath(p), name); }
  void NodePath(std::string_view p, const char* name) { Bytes(p, FieldRules::NodePath(p), name); }
  void LinkTarget(std::string_view t, const char* name) { Bytes(t, FieldRules::LinkTarget(t), name); }
  void XattrName(std::string_view n, const char* name) { Bytes(n, FieldRules::XattrName(n), name); }
  void Bulk(std::string_view b, const char* name, uint32_t max) {
    if (!Ok()) return;
    Status s = CheckBytes(b, max, true, true);
    if (!s.ok()) return Fail(s, name);
    AppendLE(head_, static_cast<uint32_t>(b.size()));
    bulk_ = b;
  }
  // The rest of the payload, uninterpreted and without a length (a void's payload).
  void Opaque(std::string_view b, const char*) {
    if (Ok()) bulk_ = b;
  }

  bool Ok() const { return status_.ok(); }
  Status status() const { return status_; }
  std::string_view bulk() const { return bulk_; }

 private:
  void Timed(const Timespec& t, bool optional, const char* name) {
    if (!Ok()) return;
    Status s = CheckTime(t, optional);
    if (!s.ok()) return Fail(s, name);
    AppendLE(head_, t.sec);
    AppendLE(head_, t.nsec);
  }
  void Bytes(std::string_view b, const Status& rule, const char* name) {
    if (!Ok()) return;
    if (!rule.ok()) return Fail(rule, name);
    AppendLE(head_, static_cast<uint32_t>(b.size()));
    head_.append(b);
  }
  void Fail(const Status& s, const char* name) {
    status_ = Status::InvalidArgument("field " + Quote(name) + ": " + s.message());
  }

  std::string& head_;
  std::string_view bulk_;
  Status status_;
};

// Reads fields from a payload, checking each against the same rules as the encoder.
// The first error stops the walk; its message names the field and its record offset.
class Decoder {
 public:
  explicit Decoder(std::string_view payload) : in_(payload) {}
  void U32(uint32_t& v, const char* name) { Fixed(v, name); }
  void U64(uint64_t& v, const char* name) { Fixed(v, name); }
  void Time(Timespec& t, const char* name) { Timed(t, false, name); }
  void OptionalTime(Timespec& t, const char* name) { Timed(t, true, name); }
  void EntryPath(std::string_view& p, const char* name) {
    if (Bytes(p, kMaxPathBytes, name)) Check(FieldRules::EntryPath(p), name);
  }
  void NodePath(std::string_view& p, const char* name) {
    if (Bytes(p, kMaxPathBytes, name)) Check(FieldRules::NodePath(p), name);
  }
  void LinkTarget(std::string_view& t, const char* name) {
    if (Bytes(t, kMaxPathBytes, name)) Check(FieldRules::LinkTarget(t), name);
  }
  void XattrName(std::string_view& n, const char* name) {
    if (Bytes(n, kMaxXattrNameBytes, name)) Check(FieldRules::XattrName(n), name);
  }
  void Bulk(std::string_view& b, const char* name, uint32_t max) { Bytes(b, max, name); }
  void Opaque(std::string_view& b, const char*) {
    if (!status_.ok()) return;
    b = in_.substr(pos_);
    pos_ = in_.size();
  }

  Status Finish() const {
    if (!status_.ok()) return status_;
    if (pos_ != in_.size()) {
      return Status::Corruption(std::to_string(in_.size() - pos_) + " trailing bytes at byte " +
                                std::to_string(kRecordHeaderSize + pos_) + " after the last field");
    }
    return {};
  }

 private:
  template <class T>
  bool Fixed(T& v, const char* name) {
    if (!status_.ok()) return false;
    if (in_.size() - pos_ < sizeof(T)) return Fail("runs past the end of the record", name);
    v = LoadLE<T>(in_.data() + pos_);
    pos_ += sizeof(T);
    return true;
  }
  void Timed(Timespec& t, bool optional, const char* name) {
    size_t at = pos_;
    if (Fixed(t.sec, name) && Fixed(t.nsec, name)) Check(CheckTime(t, optional), name, at);
  }
  bool Bytes(std::string_view& out, uint32_t max, const char* name) {
    field_start_ = pos_;
    uint32_t len = 0;
    if (!Fixed(len, name)) return false;
    if (len > max) {
      return Fail("length " + std::to_string(len) + " exceeds its limit of " + std::to_string(max), name);
    }
    if (in_.size() - pos_ < len) {
      return Fail("length " + std::to_string(len) + " runs past the end of the record", name);
    }
    out = in_.substr(pos_, len);
    pos_ += len;
    return true;
  }
  void Check(const Status& s, const char* name) { Check(s, name, field_start_); }
  void Check(const Status& s, const char* name, size_t at) {
    if (!s.ok() && status_.ok()) {
      status_ = Status::Corruption("field " + Quote(name) + " at byte " +
                                   std::to_string(kRecordHeaderSize + at) + ": " + s.message());
    }
  }
  bool Fail(const std::string& why, const char* name) {
    Check(Status::Corruption(why), name, pos_);
    return false;
  }

  std::string_view in_;
  size_t pos_ = 0;
  size_t field_start_ = 0;
  Status status_;
};

template <size_t... I>
constexpr std::array<Op (*)(), sizeof...(I)> OpFactories(std::index_sequence<I...>) {
  return {+[]() -> Op { return Op(std::in_place_index<I>); }...};
}

// A default op of the given stored type (1..kMaxRecordType). Op's alternatives are in
// RecordType order, starting at kWrite == 1; VoidOp, never stored, comes last.
Op MakeOp(RecordType type) {
  static_assert(std::variant_size_v<Op> == kMaxRecordType + 1);
  static_assert(std::variant_alternative_t<kMaxRecordType, Op>::kType == RecordType::kVoid);
  static_assert(std::variant_alternative_t<0, Op>::kType == RecordType::kWrite);
  static_assert(std::variant_alternative_t<kMaxRecordType - 1, Op>::kType == RecordType::kCheckpoint);
  static constexpr auto kFactories = OpFactories(std::make_index_sequence<kMaxRecordType>{});
  return kFactories[static_cast<size_t>(type) - 1]();
}

std::string Describe(const RecordHeader& h) {
  return "record (seq " + std::to_string(h.meta.seq) + ", " +
         std::string(RecordTypeName(h.type)) + ")";
}

}  // namespace

std::string_view RecordTypeName(RecordType type) {
  static constexpr std::array<std::string_view, kMaxRecordType + 1> kNames = {
      "invalid", "write", "truncate", "fallocate", "create", "mknod", "mkdir",
      "symlink", "link", "unlink", "rmdir", "rename", "chmod", "chown",
      "utimens", "setxattr", "removexattr", "checkpoint"};
  if (type == RecordType::kVoid) return "void";
  auto i = static_cast<size_t>(type);
  return i < kNames.size() ? kNames[i] : "unknown";
}

RecordType TypeOf(const Op& op) {
  return std::visit([](const auto& o) { return std::decay_t<decltype(o)>::kType; }, op);
}

Status CheckEntryPath(std::string_view path) { return CheckPathComponents(path); }

Status CheckNodePath(std::string_view path) {
  if (path == ".") return {};
  return CheckPathComponents(path);
}

Status EncodedRecord::Build(const Op& op) {
  head_.assign(kRecordHeaderSize, '\0');
  bulk_ = {};
  Encoder enc(head_);
  Status semantic;
  std::visit(
      [&](auto o) {  // by value: Visit() is shared with the decoder, which writes
        o.Visit(enc);
        semantic = CheckOp(o);
      },
      op);
  if (!enc.Ok()) return enc.status().Annotate(RecordTypeName(TypeOf(op)));
  if (!semantic.ok()) return semantic.Annotate(RecordTypeName(TypeOf(op)));
  bulk_ = enc.bulk();
  if (size() > std::numeric_limits<uint32_t>::max()) {
    return Status::InvalidArgument("record of " + std::to_string(size()) + " bytes is too large");
  }
  StoreLE(head_.data() + 0, static_cast<uint32_t>(size()));
  const auto* void_op = std::get_if<VoidOp>(&op);
  voided_ = void_op != nullptr;
  StoreLE(head_.data() + 8, static_cast<uint16_t>(voided_ ? void_op->original : TypeOf(op)));
  return {};
}

void EncodedRecord::Seal(const RecordMeta& meta) {
  assert(head_.size() >= kRecordHeaderSize);
  StoreLE(head_.data() + 16, meta.seq);
  StoreLE(head_.data() + 24, meta.epoch);
  StoreLE(head_.data() + 32, meta.timestamp_ns);
  uint32_t crc = crc32c::Value(head_.data() + kRecordCrcStart, head_.size() - kRecordCrcStart);
  crc = crc32c::Extend(crc, bulk_.data(), bulk_.size());
  uint32_t stored = crc32c::Mask(crc);
  StoreLE(head_.data() + kRecordCrcOffset, voided_ ? VoidedCrc(stored) : stored);
}

void EncodedRecord::CopyTo(char* out) const {
  std::memcpy(out, head_.data(), head_.size());
  if (!bulk_.empty()) std::memcpy(out + head_.size(), bulk_.data(), bulk_.size());
}

std::string EncodedRecord::ToBytes() const {
  std::string out(size(), '\0');
  CopyTo(out.data());
  return out;
}

Result<std::string> EncodeRecord(const RecordMeta& meta, const Op& op) {
  EncodedRecord rec;
  MIRROR_RETURN_IF_ERROR(rec.Build(op));
  rec.Seal(meta);
  return rec.ToBytes();
}

bool IsEndMarker(std::string_view bytes) {
  std::string_view first = bytes.substr(0, 4);
  return first.find_first_not_of('\0') == std::string_view::npos;
}

Result<RecordHeader> DecodeHeader(std::string_view bytes, const DecodeLimits& limits) {
  if (bytes.size() < kRecordHeaderSize) {
    return Status::Corruption("record header truncated: " + std::to_string(bytes.size()) +
                              " of " + std::to_string(kRecordHeaderSize) + " bytes");
  }
  RecordHeader h;
  h.length = LoadLE<uint32_t>(bytes.data() + 0);
  h.masked_crc = LoadLE<uint32_t>(bytes.data() + 4);
  auto type = LoadLE<uint16_t>(bytes.data() + 8);
  auto flags = LoadLE<uint16_t>(bytes.data() + 10);
  auto reserved = LoadLE<uint32_t>(bytes.data() + 12);
  h.meta.seq = LoadLE<uint64_t>(bytes.data() + 16);
  h.meta.epoch = LoadLE<uint64_t>(bytes.data() + 24);
  h.meta.timestamp_ns = LoadLE<int64_t>(bytes.data() + 32);
  if (h.length < kRecordHeaderSize) {
    return Status::Corruption("record length " + std::to_string(h.length) +
                              " at byte 0 is shorter than the " +
                              std::to_string(kRecordHeaderSize) + "-byte header");
  }
  if (h.length > limits.max_record_bytes) {
    return Status::Corruption("record length " + std::to_string(h.length) +
                              " at byte 0 exceeds the limit of " +
                              std::to_string(limits.max_record_bytes) + " bytes");
  }
  if (type == 0) return Status::Corruption("record type 0 (end of data) at byte 8");
  if (type > kMaxRecordType) {
    return Status::Corruption("unknown record type " + std::to_string(type) + " at byte 8");
  }
  h.type = static_cast<RecordType>(type);
  if (flags != 0 || reserved != 0) {
    return Status::Corruption(Describe(h) + ": unknown flags or reserved bits at byte 10");
  }
  return h;
}

Result<Record> DecodeRecord(std::string_view bytes, const DecodeLimits& limits) {
  MIRROR_ASSIGN_OR_RETURN(RecordHeader h, DecodeHeader(bytes, limits));
  if (h.length > bytes.size()) {
    return Status::Corruption(Describe(h) + ": length " + std::to_string(h.length) +
                              " runs past the end of the buffer (" +
                              std::to_string(bytes.size()) + " bytes)");
  }
  const uint32_t actual = crc32c::Value(bytes.data() + kRecordCrcStart, h.length - kRecordCrcStart);
  const uint32_t masked = crc32c::Mask(actual);
  if (h.masked_crc == VoidedCrc(masked)) {
    return Record{h.meta, VoidOp{h.type, bytes.substr(kRecordHeaderSize, h.length - kRecordHeaderSize)}};
  }
  if (h.masked_crc != masked) {
    return Status::Corruption(Describe(h) + ": CRC mismatch at byte 4 (stored " +
                              std::to_string(crc32c::Unmask(h.masked_crc)) + ", computed " +
                              std::to_string(actual) + ")");
  }
  Record rec{h.meta, MakeOp(h.type)};
  Decoder dec(bytes.substr(kRecordHeaderSize, h.length - kRecordHeaderSize));
  Status semantic;
  std::visit(
      [&](auto& o) {
        o.Visit(dec);
        if (dec.Finish().ok()) semantic = CheckOp(o);
      },
      rec.op);
  MIRROR_RETURN_IF_ERROR(dec.Finish().Annotate(Describe(h)));
  if (!semantic.ok()) return Status::Corruption(Describe(h) + ": " + semantic.message());
  return rec;
}

}  // namespace mirror::common
