#include "common/manifest.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/endian.h"
#include "common/unique_fd.h"
#include "tests/unit/test_util.h"

using namespace mirror::common;
using mirror::test::TempDir;
using mirror::test::WriteFileBytes;

namespace {

constexpr int64_t kBillion = 1'000'000'000;
constexpr int64_t kTime = 1795600862;  // 2026-11-25 10:01:02 UTC

// SHA-256 computed here, independently of the code under test.
std::string Sha256(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string FromHex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}

void SetMtime(const std::string& path, int64_t sec, long nsec) {
  struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
  REQUIRE(utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0);
}

void SetXattr(const std::string& path, const std::string& name, const std::string& value) {
  REQUIRE_MESSAGE(lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) == 0, path,
                  " ", name, ": ", std::strerror(errno));
}

void MakeFile(const std::string& path, const std::string& content, mode_t mode) {
  WriteFileBytes(path, content);
  REQUIRE(chmod(path.c_str(), mode) == 0);
}

std::vector<std::string> Paths(const Manifest& m) {
  std::vector<std::string> out;
  for (const ManifestEntry& e : m) out.push_back(e.path);
  return out;
}

const ManifestEntry& Find(const Manifest& m, const std::string& path) {
  auto it =
      std::find_if(m.begin(), m.end(), [&](const ManifestEntry& e) { return e.path == path; });
  REQUIRE_MESSAGE(it != m.end(), path);
  return *it;
}

Manifest Build(const std::string& root, bool hashes = true) {
  ManifestOptions options;
  options.content_hashes = hashes;
  Result<Manifest> m = BuildManifest(root, options);
  REQUIRE_MESSAGE(m.ok(), m.status().ToString());
  return std::move(m).value();
}

using Xattrs = std::vector<std::pair<std::string, std::string>>;

// Every kind of entry the walk knows, with known attributes.
struct KindsTree {
  TempDir dir;
  std::string sparse_content;

  KindsTree() {
    REQUIRE(mknod((dir / "chardev").c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0);
    SetXattr(dir / "chardev", "trusted.dev", "d");
    REQUIRE(mkdir((dir / "dir").c_str(), 0750) == 0);
    REQUIRE(chmod((dir / "dir").c_str(), 0750) == 0);
    MakeFile(dir / "dir/inner.txt", "inner", 0644);
    MakeFile(dir / "dir.txt", "x", 0644);
    REQUIRE(mkfifo((dir / "fifo").c_str(), 0644) == 0);
    SetXattr(dir / "fifo", "trusted.fifo", "f");
    MakeFile(dir / "file_a", "abc", 0640);
    REQUIRE(chown((dir / "file_a").c_str(), 1234, 5678) == 0);
    SetXattr(dir / "file_a", "user.color", "blue");
    SetXattr(dir / "file_a", "user.alpha", "");
    SetXattr(dir / "file_a", "trusted.mirrorfs.seq", "7");
    MakeFile(dir / "hard1", "linked", 0644);
    REQUIRE(link((dir / "hard1").c_str(), (dir / "hard2").c_str()) == 0);
    REQUIRE(symlink("file_a", (dir / "link").c_str()) == 0);
    SetXattr(dir / "link", "trusted.note", "1");
    {
      UniqueFd fd(open((dir / "sparse").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      REQUIRE(fd);
      REQUIRE(pwrite(fd.get(), "x", 1, 2 << 20) == 1);
      REQUIRE(ftruncate(fd.get(), 3 << 20) == 0);
    }
    sparse_content.assign(3 << 20, '\0');
    sparse_content[2 << 20] = 'x';
    SetMtime(dir / "file_a", kTime, 123456789);
  }
};

}  // namespace

TEST_CASE("WalkListsEveryKindInWalkOrder") {
  KindsTree tree;
  Manifest m = Build(tree.dir.path());
  // Pre-order by name bytes: "dir/inner.txt" before "dir.txt" (a sort of whole paths
  // would put '.' before '/'); the root itself is not listed.
  CHECK(Paths(m) == std::vector<std::string>{"chardev", "dir", "dir/inner.txt", "dir.txt", "fifo",
                                             "file_a", "hard1", "hard2", "link", "sparse"});

  const ManifestEntry& dev = Find(m, "chardev");
  CHECK(dev.mode == (S_IFCHR | 0600));
  CHECK(dev.rdev == makedev(1, 3));
  CHECK(dev.size == 0);
  CHECK(dev.nlink == 0);
  CHECK(dev.content_hash.empty());
  CHECK(dev.xattrs == Xattrs{{"trusted.dev", "d"}});

  const ManifestEntry& dir = Find(m, "dir");
  CHECK(dir.mode == (S_IFDIR | 0750));
  CHECK(dir.size == 0);
  CHECK(dir.nlink == 0);
  CHECK(dir.rdev == 0);

  const ManifestEntry& fifo = Find(m, "fifo");
  CHECK(S_ISFIFO(fifo.mode));
  CHECK(fifo.xattrs == Xattrs{{"trusted.fifo", "f"}});

  const ManifestEntry& a = Find(m, "file_a");
  CHECK(a.mode == (S_IFREG | 0640));
  CHECK(a.uid == 1234);
  CHECK(a.gid == 5678);
  CHECK(a.size == 3);
  CHECK(a.nlink == 1);
  CHECK(a.mtime_ns == kTime * kBillion + 123456789);
  CHECK(a.link_to.empty());
  // Sorted by name, trusted.mirrorfs.* left out, an empty value kept.
  CHECK(a.xattrs == Xattrs{{"user.alpha", ""}, {"user.color", "blue"}});
  // The FIPS 180-2 test vector for "abc", and our own digest of it.
  CHECK(a.content_hash ==
        FromHex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  CHECK(a.content_hash == Sha256("abc"));

  const ManifestEntry& h1 = Find(m, "hard1");
  const ManifestEntry& h2 = Find(m, "hard2");
  CHECK(h1.link_to.empty());
  CHECK(h1.nlink == 2);
  CHECK(h1.content_hash == Sha256("linked"));
  CHECK(h2.link_to == "hard1");
  CHECK(h2.nlink == 2);
  CHECK(h2.content_hash.empty());

  const ManifestEntry& link = Find(m, "link");
  CHECK(S_ISLNK(link.mode));
  CHECK(link.target == "file_a");
  CHECK(link.size == 6);
  CHECK(link.nlink == 0);
  CHECK(link.content_hash.empty());
  CHECK(link.xattrs == Xattrs{{"trusted.note", "1"}});

  const ManifestEntry& sparse = Find(m, "sparse");
  CHECK(sparse.size == (3u << 20));
  CHECK(sparse.content_hash == Sha256(tree.sparse_content));

  const ManifestEntry& inner = Find(m, "dir/inner.txt");
  CHECK(inner.content_hash == Sha256("inner"));

  struct stat st {};
  REQUIRE(lstat((tree.dir / "dir").c_str(), &st) == 0);
  CHECK(dir.mtime_ns == st.st_mtim.tv_sec * kBillion + st.st_mtim.tv_nsec);
}

TEST_CASE("WalkOptionsHashesAndSkippedPrefixes") {
  KindsTree tree;
  ManifestOptions options;  // content_hashes off by default
  options.skip_xattr_prefixes = {};
  Result<Manifest> m = BuildManifest(tree.dir.path(), options);
  REQUIRE(m.ok());
  for (const ManifestEntry& e : *m) CHECK_MESSAGE(e.content_hash.empty(), e.path);
  CHECK(Find(*m, "file_a").xattrs ==
        Xattrs{{"trusted.mirrorfs.seq", "7"}, {"user.alpha", ""}, {"user.color", "blue"}});
  options.skip_xattr_prefixes = {"user.c", "trusted."};
  m = BuildManifest(tree.dir.path(), options);
  REQUIRE(m.ok());
  CHECK(Find(*m, "file_a").xattrs == Xattrs{{"user.alpha", ""}});
  CHECK(Find(*m, "link").xattrs.empty());
}

TEST_CASE("ChildrenSortByUnsignedNameBytes") {
  TempDir dir;
  for (const char* name : {"\xc3\xa9", "a b", "Z", "a"}) WriteFileBytes(dir / name, "");
  REQUIRE(mkdir((dir / "a-dir").c_str(), 0755) == 0);
  WriteFileBytes(dir / "a-dir/\x01", "");
  // A signed char comparison would put "\xc3\xa9" first.
  CHECK(Paths(Build(dir.path())) ==
        std::vector<std::string>{"Z", "a", "a b", "a-dir", "a-dir/\x01", "\xc3\xa9"});
}

TEST_CASE("WalkOfMissingOrNonDirectoryRootFails") {
  TempDir dir;
  WriteFileBytes(dir / "f", "x");
  CHECK(BuildManifest(dir / "f", {}).status().code() == Code::kIOError);
  CHECK(BuildManifest(dir / "nope", {}).status().code() == Code::kIOError);
  Result<Manifest> empty = BuildManifest(dir.path() + "/", {});
  REQUIRE(empty.ok());
  CHECK(Paths(*empty) == std::vector<std::string>{"f"});
}

TEST_CASE("MaxEntriesGivesFull") {
  TempDir dir;
  REQUIRE(mkdir((dir / "a").c_str(), 0755) == 0);
  WriteFileBytes(dir / "a/1", "");
  WriteFileBytes(dir / "a/2", "");
  WriteFileBytes(dir / "b", "");
  WriteFileBytes(dir / "c", "");
  ManifestOptions options;
  options.max_entries = 5;
  Result<Manifest> m = BuildManifest(dir.path(), options);
  REQUIRE(m.ok());
  CHECK(m->size() == 5);
  options.max_entries = 4;
  CHECK(BuildManifest(dir.path(), options).status().code() == Code::kFull);
  options.max_entries = 1;  // caught while reading the first directory
  CHECK(BuildManifest(dir.path(), options).status().code() == Code::kFull);
}

TEST_CASE("DepthBeyondTheLimitGivesFull") {
  TempDir dir;
  std::string path = dir.path();
  for (uint32_t i = 0; i < kManifestMaxDepth; ++i) {
    path += "/d";
    REQUIRE(mkdir(path.c_str(), 0755) == 0);
  }
  Result<Manifest> m = BuildManifest(dir.path(), {});
  REQUIRE(m.ok());
  CHECK(m->size() == kManifestMaxDepth);
  CHECK(m->back().path.size() == 2 * kManifestMaxDepth - 1);
  REQUIRE(mkdir((path + "/d").c_str(), 0755) == 0);
  Result<Manifest> deeper = BuildManifest(dir.path(), {});
  CHECK(deeper.status().code() == Code::kFull);
  CHECK(deeper.status().message().find("deeper than 256") != std::string::npos);
}

TEST_CASE("PathLongerThanTheLimitGivesFull") {
  TempDir dir;
  // 16 names of 255 bytes make a 4095-byte path; a 17th is too long for a manifest (and
  // for path-based syscalls, so the chain is built and removed relative to fds).
  const std::string name(255, 'n');
  std::vector<UniqueFd> fds;
  fds.emplace_back(open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  for (int i = 0; i < 17; ++i) {
    REQUIRE(mkdirat(fds.back().get(), name.c_str(), 0755) == 0);
    fds.emplace_back(openat(fds.back().get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(fds.back());
  }
  Result<Manifest> m = BuildManifest(dir.path(), {});
  CHECK(m.status().code() == Code::kFull);
  CHECK(m.status().message().find("longer than 4095") != std::string::npos);
  REQUIRE(unlinkat(fds[16].get(), name.c_str(), AT_REMOVEDIR) == 0);
  m = BuildManifest(dir.path(), {});
  REQUIRE(m.ok());
  CHECK(m->back().path.size() == 4095);
  for (int i = 15; i >= 0; --i) REQUIRE(unlinkat(fds[i].get(), name.c_str(), AT_REMOVEDIR) == 0);
}

namespace {

// Mounts `source` at `target` (tmpfs when source is empty) for the life of the object.
class ScopedMount {
 public:
  ScopedMount(const std::string& source, const std::string& target) : target_(target) {
    int rc = source.empty() ? mount("tmpfs", target.c_str(), "tmpfs", 0, "size=1m")
                            : mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr);
    mounted_ = rc == 0;
  }
  ~ScopedMount() {
    if (mounted_) umount2(target_.c_str(), MNT_DETACH);
  }
  ScopedMount(const ScopedMount&) = delete;
  ScopedMount& operator=(const ScopedMount&) = delete;
  bool mounted() const { return mounted_; }

 private:
  std::string target_;
  bool mounted_ = false;
};

}  // namespace

TEST_CASE("MountPointsAreListedButNotCrossed") {
  TempDir dir;
  REQUIRE(mkdir((dir / "bind").c_str(), 0755) == 0);
  REQUIRE(mkdir((dir / "other").c_str(), 0755) == 0);
  REQUIRE(mkdir((dir / "src").c_str(), 0755) == 0);
  WriteFileBytes(dir / "src/f", "x");
  WriteFileBytes(dir / "z", "");
  ScopedMount tmpfs("", dir / "other");
  if (!tmpfs.mounted()) {
    MESSAGE("mount is not allowed here: skipped");
    return;
  }
  ScopedMount bind(dir / "src", dir / "bind");  // the same filesystem: same st_dev
  REQUIRE(bind.mounted());
  WriteFileBytes(dir / "other/inside", "y");
  Manifest m = Build(dir.path());
  CHECK(Paths(m) == std::vector<std::string>{"bind", "other", "src", "src/f", "z"});
  CHECK(S_ISDIR(Find(m, "other").mode));
}

TEST_CASE("EncodeDecodeRoundTrip") {
  KindsTree tree;
  Manifest m = Build(tree.dir.path());
  ManifestEntry odd;
  odd.path = "dir/\xff\x01odd";
  odd.mode = S_IFBLK | 07777;
  odd.uid = 0xffffffffu;
  odd.gid = 1;
  odd.mtime_ns = -5;
  odd.rdev = UINT64_MAX;
  odd.xattrs = {{std::string(255, 'n'), std::string(65536, '\0')}, {"user.z", "v"}};
  m.push_back(odd);
  std::string bytes = "prefix";
  EncodeManifestEntries(m, &bytes);
  REQUIRE(bytes.substr(0, 6) == "prefix");  // appends
  Result<Manifest> back = DecodeManifestEntries(std::string_view(bytes).substr(6));
  REQUIRE_MESSAGE(back.ok(), back.status().ToString());
  CHECK(*back == m);

  std::string none;
  EncodeManifestEntries({}, &none);
  CHECK(none.empty());
  Result<Manifest> empty = DecodeManifestEntries(none);
  REQUIRE(empty.ok());
  CHECK(empty->empty());
}

namespace {

// Two small entries. The first, "a" (no link_to, no target, xattr user.x = "1", a hash),
// lays out as: entry_length @0, path @4, mode @9, uid @13, gid @17, size @21,
// mtime_ns @29, rdev @37, nlink @45, link_to @49, target @53, xattr_count @57,
// xattr_name @61, xattr_value @71, content_hash @76, end @112.
Manifest SmallManifest() {
  ManifestEntry a;
  a.path = "a";
  a.mode = S_IFREG | 0644;
  a.size = 3;
  a.nlink = 1;
  a.xattrs = {{"user.x", "1"}};
  a.content_hash = std::string(32, '\x5a');
  ManifestEntry b;
  b.path = "a2";
  b.mode = S_IFREG | 0644;
  b.link_to = "a";
  return {a, b};
}

std::string SmallEncoding() {
  std::string bytes;
  EncodeManifestEntries(SmallManifest(), &bytes);
  return bytes;
}

void ExpectCorruption(const std::string& bytes, const std::string& fragment) {
  Result<Manifest> m = DecodeManifestEntries(bytes);
  REQUIRE_MESSAGE(!m.ok(), fragment);
  CHECK(m.status().code() == Code::kCorruption);
  CHECK_MESSAGE(m.status().message().find(fragment) != std::string::npos, m.status().message(),
                " lacks ", fragment);
}

}  // namespace

TEST_CASE("DecodeRejectsEveryTruncation") {
  const std::string bytes = SmallEncoding();
  const size_t first_end = 112;
  REQUIRE(LoadLE<uint32_t>(bytes.data()) == first_end - 4);
  const Manifest all = SmallManifest();
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    Result<Manifest> m = DecodeManifestEntries(std::string_view(bytes).substr(0, cut));
    if (cut == 0 || cut == first_end) {  // whole entries: a shorter batch
      REQUIRE(m.ok());
      CHECK(*m == Manifest(all.begin(), all.begin() + (cut == 0 ? 0 : 1)));
    } else {
      REQUIRE_MESSAGE(!m.ok(), "cut at ", cut);
      CHECK(m.status().code() == Code::kCorruption);
      const std::string expected_entry =
          cut < first_end ? "manifest entry 0: " : "manifest entry 1: ";
      CHECK(m.status().message().starts_with(expected_entry));
    }
  }
}

TEST_CASE("DecodeRejectsCorruptFields") {
  const std::string good = SmallEncoding();
  REQUIRE(DecodeManifestEntries(good).ok());
  auto with_u32 = [&](size_t at, uint32_t v) {
    std::string b = good;
    StoreLE<uint32_t>(b.data() + at, v);
    return b;
  };
  // entry_length one too long (with a byte to take): the fields end before it does.
  std::string longer = with_u32(0, 109);
  longer.insert(112, 1, '\0');
  ExpectCorruption(
      longer,
      "manifest entry 0: field 'entry_length' at byte 0: 109 bytes, but the fields end after 108");
  // One too short: the hash runs past the entry.
  ExpectCorruption(
      with_u32(0, 107),
      "manifest entry 0: field 'content_hash' at byte 80: needs 32 bytes, the entry has 31 left");
  ExpectCorruption(with_u32(0, 0xffffffffu), "field 'entry_length' at byte 0: 4294967295 bytes");
  ExpectCorruption(with_u32(4, 0xffffffffu),
                   "field 'path' at byte 4: length 4294967295 exceeds the limit 4095");
  ExpectCorruption(with_u32(4, 200),
                   "field 'path' at byte 8: needs 200 bytes, the entry has 104 left");
  ExpectCorruption(with_u32(57, kManifestMaxXattrs + 1),
                   "field 'xattr_count' at byte 57: 10001 exceeds");
  ExpectCorruption(with_u32(57, 2), "manifest entry 0: field 'xattr_name'");
  ExpectCorruption(with_u32(61, 256),
                   "field 'xattr_name' at byte 61: length 256 exceeds the limit 255");
  ExpectCorruption(with_u32(71, 65537), "field 'xattr_value' at byte 71: length 65537 exceeds");
  ExpectCorruption(with_u32(76, 33),
                   "field 'content_hash' at byte 76: length 33 exceeds the limit 32");
  ExpectCorruption(with_u32(9, 0644), "field 'mode' at byte 9: unknown file type");
  // A 31-byte hash: entry_length shortened to match, so only the hash length is wrong.
  std::string short_hash = with_u32(76, 31);
  short_hash.erase(111, 1);
  StoreLE<uint32_t>(short_hash.data(), 107);
  ExpectCorruption(short_hash, "field 'content_hash' at byte 76: length 31, not 0 or 32");
  std::string dotdot = good;
  dotdot[8] = '.';
  dotdot.insert(8, 1, '.');
  StoreLE<uint32_t>(dotdot.data(), 109);
  StoreLE<uint32_t>(dotdot.data() + 4, 2);
  ExpectCorruption(dotdot, "field 'path' at byte 4");
  std::string slash = good;
  slash[8] = '/';
  ExpectCorruption(slash, "field 'path' at byte 4");
  // The second entry's link_to ("a") made "/": not a relative path.
  std::string bad_link = good;
  const size_t link_bytes = 112 + 4 + 4 + 2 + 4 * 3 + 8 * 3 + 4 + 4;
  REQUIRE(bad_link[link_bytes] == 'a');
  bad_link[link_bytes] = '/';
  ExpectCorruption(bad_link, "manifest entry 1: field 'link_to'");
  std::string trailing = good + std::string(3, '\0');
  ExpectCorruption(trailing, "manifest entry 2: field 'entry_length' at byte " +
                                 std::to_string(good.size()) + ": needs 4 bytes, 3 left");
}

TEST_CASE("DecodeRejectsUnsortedXattrs") {
  Manifest m = SmallManifest();
  m[0].xattrs = {{"user.b", "1"}, {"user.a", "2"}};
  std::string bytes;
  EncodeManifestEntries(m, &bytes);
  ExpectCorruption(bytes, "field 'xattr_name'");
  m[0].xattrs = {{"user.a", "1"}, {"user.a", "2"}};
  bytes.clear();
  EncodeManifestEntries(m, &bytes);
  ExpectCorruption(bytes, "not sorted or repeated");
  m[0].xattrs = {{"", "1"}};
  bytes.clear();
  EncodeManifestEntries(m, &bytes);
  ExpectCorruption(bytes, "empty name");
}

TEST_CASE("DecodeSurvivesRandomDamage") {
  const std::string good = SmallEncoding();
  std::mt19937 rng(20261125);
  int rejected = 0;
  for (int round = 0; round < 5000; ++round) {
    std::string b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) b[rng() % b.size()] = static_cast<char>(rng());
    Result<Manifest> m = DecodeManifestEntries(b);
    if (!m.ok()) {
      ++rejected;
      CHECK(m.status().code() == Code::kCorruption);
    }
  }
  CHECK(rejected > 0);
}

// ---------------------------------------------------------------------------------------
// CompareManifests on real trees, each variant differing from the base in one way.

namespace {

enum class Variant { kSame, kMissing, kExtra, kType, kMode, kXattr, kMtime, kContent };

// dir/ (0755), dir/f "one", g "two" (0644, user.a = "1"), link -> g; every mtime kTime.
void MakeCompareTree(const std::string& r, Variant v) {
  REQUIRE(mkdir((r + "/dir").c_str(), 0755) == 0);
  REQUIRE(chmod((r + "/dir").c_str(), 0755) == 0);
  if (v != Variant::kMissing) MakeFile(r + "/dir/f", "one", 0644);
  if (v == Variant::kType) {
    REQUIRE(mkdir((r + "/g").c_str(), 0644) == 0);
    REQUIRE(chmod((r + "/g").c_str(), 0644) == 0);
  } else {
    MakeFile(r + "/g", v == Variant::kContent ? "twX" : "two", v == Variant::kMode ? 0600 : 0644);
  }
  SetXattr(r + "/g", "user.a", v == Variant::kXattr ? "2" : "1");
  if (v == Variant::kExtra) MakeFile(r + "/h", "", 0644);
  REQUIRE(symlink("g", (r + "/link").c_str()) == 0);
  for (const char* p : {"/dir/f", "/g", "/h", "/link", "/dir"}) {
    struct stat st {};
    if (lstat((r + p).c_str(), &st) == 0) SetMtime(r + p, kTime, 0);
  }
  if (v == Variant::kMtime) SetMtime(r + "/g", kTime + 1, 500'000'000);
}

std::vector<ManifestDiff> CompareTrees(Variant v, const ManifestCompareOptions& options = {}) {
  TempDir source, image;
  MakeCompareTree(source.path(), Variant::kSame);
  MakeCompareTree(image.path(), v);
  return CompareManifests(Build(source.path()), Build(image.path()), options);
}

void ExpectOneDiff(Variant v, ManifestDiff::Kind kind, const std::string& describe) {
  std::vector<ManifestDiff> diffs = CompareTrees(v);
  REQUIRE(diffs.size() == 1);
  CHECK(diffs[0].kind == kind);
  CHECK(diffs[0].Describe() == describe);
}

}  // namespace

TEST_CASE("CompareOfEqualTreesFindsNothing") { CHECK(CompareTrees(Variant::kSame).empty()); }

TEST_CASE("CompareFindsEachKindOfDifference") {
  using K = ManifestDiff::Kind;
  ExpectOneDiff(Variant::kMissing, K::kMissing, "dir/f: missing in the image");
  ExpectOneDiff(Variant::kExtra, K::kExtra, "h: only in the image");
  ExpectOneDiff(Variant::kType, K::kType, "g: type file vs directory");
  ExpectOneDiff(Variant::kMode, K::kMeta, "g: mode 100644 vs 100600");
  ExpectOneDiff(Variant::kXattr, K::kMeta, "g: xattr user.a differs");
  ExpectOneDiff(Variant::kMtime, K::kMeta,
                "g: mtime 2026-11-25 10:01:02.000000000 vs 2026-11-25 10:01:03.500000000");
  ExpectOneDiff(Variant::kContent, K::kContent, "g: content differs");
}

TEST_CASE("CompareOptionsTurnOffMtimeAndContent") {
  ManifestCompareOptions options;
  options.mtime = false;
  CHECK(CompareTrees(Variant::kMtime, options).empty());
  options = {};
  options.content = false;
  CHECK(CompareTrees(Variant::kContent, options).empty());
  // Without hashes on one side there is nothing to compare.
  TempDir source, image;
  MakeCompareTree(source.path(), Variant::kSame);
  MakeCompareTree(image.path(), Variant::kContent);
  CHECK(CompareManifests(Build(source.path()), Build(image.path(), false)).empty());
}

TEST_CASE("CompareOrdersSourceDiffsThenExtrasAndNamesEveryField") {
  auto entry = [](std::string path, uint32_t mode) {
    ManifestEntry e;
    e.path = std::move(path);
    e.mode = mode;
    return e;
  };
  ManifestEntry s_file = entry("c", S_IFREG | 0644);
  s_file.uid = 1;
  s_file.gid = 2;
  s_file.size = 10;
  s_file.link_to = "a";
  s_file.xattrs = {{"user.gone", "1"}, {"user.same", "x"}};
  s_file.content_hash = std::string(32, 'a');
  ManifestEntry i_file = s_file;
  i_file.uid = 3;
  i_file.gid = 4;
  i_file.size = 12;
  i_file.link_to = "";
  i_file.xattrs = {{"user.new", "1"}, {"user.same", "x"}};
  i_file.content_hash = std::string(32, 'b');
  ManifestEntry s_link = entry("l", S_IFLNK | 0777);
  s_link.target = "x";
  s_link.mtime_ns = 1;  // symlink mtimes are not compared
  ManifestEntry i_link = s_link;
  i_link.target = "y\n";
  i_link.mtime_ns = 2;
  ManifestEntry s_dev = entry("d", S_IFCHR | 0600);
  s_dev.rdev = makedev(8, 1);
  ManifestEntry i_dev = s_dev;
  i_dev.rdev = makedev(8, 2);
  const Manifest source = {entry("a", S_IFREG | 0644), entry("b", S_IFDIR | 0755), s_file, s_link,
                           s_dev};
  const Manifest image = {
      entry("x", S_IFREG | 0644),        i_dev, i_link, i_file, entry("a", S_IFREG | 0644),
      entry("bad\nname", S_IFIFO | 0644)};
  std::vector<ManifestDiff> diffs = CompareManifests(source, image);
  std::vector<std::string> described;
  for (const ManifestDiff& d : diffs) described.push_back(d.Describe());
  CHECK(described == std::vector<std::string>{
                         "b: missing in the image",
                         "c: uid 1 vs 3; gid 2 vs 4; size 10 vs 12; link_to 'a' vs ''; xattr "
                         "user.gone only in the source; xattr user.new only in the image",
                         "c: content differs",
                         "l: target 'x' vs 'y\\x0a'",
                         "d: rdev 8:1 vs 8:2",
                         "x: only in the image",
                         "\"bad\\x0aname\": only in the image",
                     });
}

// ---------------------------------------------------------------------------------------

TEST_CASE("FileBlockSumsOfThreeAndAHalfBlocks") {
  TempDir dir;
  constexpr uint32_t kBlock = 4096;
  std::string data(kBlock * 7 / 2, '\0');
  std::mt19937 rng(7);
  for (char& c : data) c = static_cast<char>(rng());
  WriteFileBytes(dir / "f", data);
  UniqueFd fd(open((dir / "f").c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  Result<std::vector<BlockSum>> sums = FileBlockSums(fd.get(), kBlock);
  REQUIRE_MESSAGE(sums.ok(), sums.status().ToString());
  REQUIRE(sums->size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    const std::string piece = data.substr(i * kBlock, kBlock);
    CHECK((*sums)[i] == SumOfBlock(piece));
    CHECK(std::memcmp((*sums)[i].data(), Sha256(piece).data(), 16) == 0);
  }
  CHECK(data.substr(3 * kBlock).size() == kBlock / 2);
  CHECK((*sums)[0] != (*sums)[1]);

  Result<std::vector<BlockSum>> big = FileBlockSums(fd.get(), 2 * kBlock);
  REQUIRE(big.ok());
  REQUIRE(big->size() == 2);
  CHECK((*big)[1] == SumOfBlock(data.substr(2 * kBlock)));
}

TEST_CASE("SumOfBlockIsTruncatedSha256") {
  const BlockSum sum = SumOfBlock("abc");
  const std::string expected = FromHex("ba7816bf8f01cfea414140de5dae2223");
  CHECK(std::memcmp(sum.data(), expected.data(), 16) == 0);
  CHECK(SumOfBlock("abd") != sum);
}

TEST_CASE("FileBlockSumsRejectsBadBlockSizesAndNonFiles") {
  TempDir dir;
  WriteFileBytes(dir / "empty", "");
  UniqueFd fd(open((dir / "empty").c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  for (uint32_t bad : {0u, 1u, 2048u, 4097u, 6144u, 0xffffffffu})
    CHECK_MESSAGE(FileBlockSums(fd.get(), bad).status().code() == Code::kInvalidArgument, bad);
  Result<std::vector<BlockSum>> none = FileBlockSums(fd.get(), 1u << 31);
  REQUIRE(none.ok());
  CHECK(none->empty());
  UniqueFd dfd(open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  CHECK(FileBlockSums(dfd.get(), 4096).status().code() == Code::kInvalidArgument);
  CHECK(FileBlockSums(-1, 4096).status().code() == Code::kIOError);
}
