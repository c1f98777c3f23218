// Journal::Create, Open and recovery: everything that runs before the first Append.
#include "common/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "common/endian.h"
#include "common/journal_format.h"

namespace mirror::common {
namespace {

Status CheckIdentity(const JournalIdentity& id) {
  MIRROR_RETURN_IF_ERROR(CheckJournalId(id.source_id, "source id"));
  return CheckJournalId(id.volume_id, "volume id");
}

std::string Describe(std::string_view source, std::string_view volume, uint64_t epoch) {
  return "source '" + std::string(source) + "', volume '" + std::string(volume) + "', epoch " +
         std::to_string(epoch);
}

Status CheckOwner(const JournalHeader& h, const JournalIdentity& expected, std::string_view path) {
  if (h.source_id == expected.source_id && h.volume_id == expected.volume_id &&
      h.epoch == expected.epoch) {
    return {};
  }
  return Status::Mismatch("journal " + std::string(path) + " belongs to " +
                          Describe(h.source_id, h.volume_id, h.epoch) + ", not " +
                          Describe(expected.source_id, expected.volume_id, expected.epoch));
}

// Reads the header page with pread: the file may be shorter than its header says.
Result<ChosenHeader> ReadHeaderFromFd(int fd, const std::string& path) {
  std::string page(kJournalDataStart, '\0');
  size_t got = 0;
  while (got < page.size()) {
    ssize_t r = ::pread(fd, page.data() + got, page.size() - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::IOError("pread " + path, errno);
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  page.resize(got);
  return ChooseHeader(page, path);
}

// Makes a new directory entry durable: fsync of the parent directory.
Status SyncParentDir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Status::IOError("open " + dir, errno);
  if (::fsync(fd.get()) != 0) return Status::IOError("fsync " + dir, errno);
  return {};
}

// Removes a half-made file unless released.
class UnlinkOnFailure {
 public:
  explicit UnlinkOnFailure(std::string path) : path_(std::move(path)) {}
  ~UnlinkOnFailure() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  UnlinkOnFailure(const UnlinkOnFailure&) = delete;
  UnlinkOnFailure& operator=(const UnlinkOnFailure&) = delete;
  void Release() { path_.clear(); }

 private:
  std::string path_;
};

uint64_t MaxRecordBytes(const RingGeometry& geo, const DecodeLimits& limits) {
  return std::min<uint64_t>(limits.max_record_bytes, geo.capacity() / 2);
}

}  // namespace

Journal::Journal(std::unique_ptr<JournalMedium> medium, JournalHeader header, int header_slot,
                 const JournalOptions& options)
    : medium_(std::move(medium)),
      geo_{header.data_start, header.file_size},
      identity_{header.source_id, header.volume_id, header.epoch},
      limits_(options.limits),
      max_record_bytes_(MaxRecordBytes(geo_, options.limits)),
      header_(std::move(header)),
      header_slot_(header_slot) {
  // An empty ring at the header's tail; Recover() moves the head past live records.
  head_ = committed_end_ = tail_offset_ = header_.tail_offset;
  tail_seq_ = next_seq_ = header_.tail_seq;
  committed_seq_ = released_seq_ = tail_seq_ - 1;
  committed_published_.store(committed_seq_);
  recovery_.first_seq = tail_seq_;
  recovery_.last_seq = committed_seq_;
  recovery_.stop_offset = head_;
}

Journal::~Journal() { Shutdown(); }

Result<std::unique_ptr<Journal>> Journal::Create(const std::string& path,
                                                 const JournalIdentity& identity,
                                                 const JournalOptions& options) {
  MIRROR_RETURN_IF_ERROR(CheckIdentity(identity));
  MIRROR_RETURN_IF_ERROR(CheckJournalSize(options.size_bytes));
  if (options.first_seq == 0)
    return Status::InvalidArgument("the first seq of a journal must be at least 1");
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return Status::FromErrno("create journal " + path, errno);
  UnlinkOnFailure cleanup(path);
  // Preallocated blocks read as zeros (the end of data) and never meet ENOSPC later.
  if (int rc = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(options.size_bytes)); rc != 0) {
    return Status::FromErrno(
        "posix_fallocate " + path + " to " + std::to_string(options.size_bytes) + " bytes", rc);
  }
  JournalHeader header;
  header.file_size = options.size_bytes;
  header.data_start = kJournalDataStart;
  header.epoch = identity.epoch;
  header.generation = 1;
  header.tail_offset = kJournalDataStart;
  header.tail_seq = options.first_seq;
  header.source_id = identity.source_id;
  header.volume_id = identity.volume_id;
  MIRROR_ASSIGN_OR_RETURN(
      auto medium, NewJournalMedium(options.medium, std::move(fd), options.size_bytes, path));
  char slot[kJournalSlotSize];
  EncodeHeaderSlot(header, slot);
  std::string_view piece[1] = {{slot, sizeof slot}};
  MIRROR_RETURN_IF_ERROR(medium->WriteDurably(kJournalSlotOffsets[0], piece));
  MIRROR_RETURN_IF_ERROR(SyncParentDir(path));
  cleanup.Release();
  // The ring is all zeros: nothing to recover.
  return std::unique_ptr<Journal>(new Journal(std::move(medium), std::move(header), 0, options));
}

Result<std::unique_ptr<Journal>> Journal::Open(const std::string& path,
                                               const JournalIdentity& expected,
                                               const JournalOptions& options) {
  MIRROR_RETURN_IF_ERROR(CheckIdentity(expected));
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return Status::FromErrno("open journal " + path, errno);
  MIRROR_ASSIGN_OR_RETURN(ChosenHeader chosen, ReadHeaderFromFd(fd.get(), path));
  MIRROR_RETURN_IF_ERROR(CheckOwner(chosen.header, expected, path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::IOError("fstat " + path, errno);
  const uint64_t file_size = chosen.header.file_size;
  uint64_t extended = 0;
  if (static_cast<uint64_t>(st.st_size) < file_size) {
    // A file cut short (a crash while a write()-based file grew, a copy that stopped):
    // the missing part is zeros, which read as the end of data.
    extended = file_size - static_cast<uint64_t>(st.st_size);
    if (int rc = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(file_size)); rc != 0) {
      return Status::FromErrno(
          "posix_fallocate " + path + " back to " + std::to_string(file_size) + " bytes", rc);
    }
    if (::fsync(fd.get()) != 0) return Status::IOError("fsync " + path, errno);
  }
  MIRROR_ASSIGN_OR_RETURN(auto medium,
                          NewJournalMedium(options.medium, std::move(fd), file_size, path));
  MIRROR_ASSIGN_OR_RETURN(auto journal, OpenWithMedium(std::move(medium), expected, options));
  journal->recovery_.extended_bytes = extended;
  return journal;
}

Result<std::unique_ptr<Journal>> Journal::OpenWithMedium(std::unique_ptr<JournalMedium> medium,
                                                         const JournalIdentity& expected,
                                                         const JournalOptions& options) {
  MIRROR_RETURN_IF_ERROR(CheckIdentity(expected));
  std::string scratch;
  const uint64_t page_bytes = std::min<uint64_t>(medium->size(), kJournalDataStart);
  MIRROR_ASSIGN_OR_RETURN(std::string_view page, medium->Read(0, page_bytes, &scratch));
  MIRROR_ASSIGN_OR_RETURN(ChosenHeader chosen, ChooseHeader(page, medium->name()));
  MIRROR_RETURN_IF_ERROR(CheckOwner(chosen.header, expected, medium->name()));
  if (medium->size() < chosen.header.file_size) {
    return Status::Corruption("journal " + medium->name() + " is " +
                              std::to_string(medium->size()) + " bytes, its header says " +
                              std::to_string(chosen.header.file_size));
  }
  std::unique_ptr<Journal> journal(
      new Journal(std::move(medium), std::move(chosen.header), chosen.slot, options));
  MIRROR_RETURN_IF_ERROR(journal->Recover());
  return journal;
}

Result<JournalIdentity> Journal::ReadIdentity(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::FromErrno("open journal " + path, errno);
  MIRROR_ASSIGN_OR_RETURN(ChosenHeader chosen, ReadHeaderFromFd(fd.get(), path));
  return JournalIdentity{chosen.header.source_id, chosen.header.volume_id, chosen.header.epoch};
}

// Walks the ring from the header's tail (every record fully decoded), then erases the
// stray records beyond the stop point: once new appends reach them, a stray whose seq
// happens to be the next expected one would otherwise pass for a live record.
Status Journal::Recover() {
  RingWalker walker(medium_.get(), geo_, identity_.epoch, limits_, header_.tail_offset,
                    header_.tail_seq);
  uint64_t records = 0, since_index = 0, consumed = 0;
  std::deque<IndexEntry> index;
  for (;;) {
    MIRROR_ASSIGN_OR_RETURN(bool more, walker.Next(RingWalker::Mode::kFullDecode));
    if (!more) break;
    ++records;
    since_index += walker.consumed() - consumed;
    consumed = walker.consumed();
    if (since_index >= kIndexStride) {
      index.push_back({walker.next_seq() - 1, walker.record_offset()});
      since_index = 0;
    }
  }
  recovery_.records = records;
  recovery_.last_seq = walker.next_seq() - 1;
  recovery_.stop_offset = walker.offset();
  recovery_.stop_reason = walker.stop_reason();
  std::string hint_scratch;
  MIRROR_ASSIGN_OR_RETURN(std::string_view hint_bytes,
                          medium_->Read(kJournalReleasedHintOffset, 8, &hint_scratch));
  recovery_.released_hint = std::clamp(LoadLE<uint64_t>(hint_bytes.data()),
                                       recovery_.first_seq - 1, recovery_.last_seq);
  MIRROR_ASSIGN_OR_RETURN(
      std::vector<uint64_t> strays,
      FindStrayRecords(*medium_, geo_, identity_.epoch, limits_, walker.offset(),
                       header_.tail_offset, walker.next_seq()));
  recovery_.records_after_stop = strays.size();
  if (!strays.empty()) {
    const char zeros[4] = {};
    std::string_view piece[1] = {{zeros, sizeof zeros}};
    for (uint64_t at : strays) MIRROR_RETURN_IF_ERROR(medium_->Write(at, piece));
    MIRROR_RETURN_IF_ERROR(medium_->Sync(geo_.data_start, geo_.capacity()));
  }
  std::lock_guard lock(mu_);
  index_ = std::move(index);
  bytes_since_index_ = since_index;
  head_ = committed_end_ = walker.offset();
  next_seq_ = walker.next_seq();
  // Recovered records count as released: the writer deals with those above the hint
  // (recovery().released_hint) before it appends anything new.
  committed_seq_ = released_seq_ = next_seq_ - 1;
  committed_published_.store(committed_seq_);
  return {};
}

}  // namespace mirror::common
