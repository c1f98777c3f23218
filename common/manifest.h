// Manifests: what a tree holds, computed the same way on both sides (issue 5: resync,
// baseline and `mirrorfs verify` compare BACKING with mirrord's image without copying
// data back). A manifest lists every entry below a root (the root itself is not listed:
// the image's root directory belongs to mirrord), in walk order: depth-first, pre-order,
// children in byte order of their names, so parents come before their children.
//
//   ManifestOptions o;  o.content_hashes = true;
//   MIRROR_ASSIGN_OR_RETURN(Manifest m, BuildManifest("/srv/data", o));
//   std::string bytes;  EncodeManifestEntries(m, &bytes);           // for the wire
//   MIRROR_ASSIGN_OR_RETURN(Manifest back, DecodeManifestEntries(bytes));
//   for (const ManifestDiff& d : CompareManifests(source, image, {})) ... d.Describe()
//
// Block sums (resync of a file that differs): one digest per block of a regular file, so
// that only differing blocks are sent. Format of the encoded entries: docs/formats.md,
// "Manifest entries".
//
// Limits (shared by the walk and the decoder, so a manifest that BuildManifest makes always
// decodes): paths, link_to and symlink targets at most kMaxPathBytes, xattr names at most
// kMaxXattrNameBytes and values at most kMaxXattrValueBytes (common/record.h), at most
// kManifestMaxXattrs xattrs per entry, directories at most kManifestMaxDepth levels deep.
//
// Thread-safety: pure functions over their arguments; reentrant.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace mirror::common {

inline constexpr uint32_t kManifestFormatVersion = 1;   // of the encoded entries
inline constexpr uint32_t kManifestMaxXattrs = 10'000;  // per entry
// Levels of directories below the root (an entry directly under the root is at depth 1).
// The walk holds one fd per level, so this also bounds its open fds.
inline constexpr uint32_t kManifestMaxDepth = 256;
inline constexpr size_t kManifestHashBytes = 32;  // SHA-256

struct ManifestEntry {
  std::string path;   // relative to the root, no leading "/": "a", "a/b"
  uint32_t mode = 0;  // st_mode: type and permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;     // regular files and symlinks; 0 for the rest
  int64_t mtime_ns = 0;  // since the epoch (directories too); saturates past +-292 years
  uint64_t rdev = 0;     // character and block devices; 0 for the rest
  uint32_t nlink = 0;    // regular files; 0 for the rest (directory link counts differ by fs)
  // Hard links: the path (in this manifest) of the first entry of the same inode in walk
  // order; empty for that first entry and for inodes with one name.
  std::string link_to;
  std::string target;  // symlinks: the target, as stored
  // Every xattr except those under ManifestOptions::skip_xattr_prefixes, by name (sorted).
  std::vector<std::pair<std::string, std::string>> xattrs;
  // Regular files, with ManifestOptions::content_hashes: SHA-256 of the content (32
  // bytes); empty otherwise (and for the later names of a hard-linked inode).
  std::string content_hash;
  friend bool operator==(const ManifestEntry&, const ManifestEntry&) = default;
};
using Manifest = std::vector<ManifestEntry>;

struct ManifestOptions {
  bool content_hashes = false;
  // Xattrs that are not the volume's content (mirrorfs's own bookkeeping on BACKING).
  std::vector<std::string> skip_xattr_prefixes = {"trusted.mirrorfs."};
  uint64_t max_entries = 10'000'000;  // a larger tree is refused (Full), not half-listed
};

// Walks `root` (a directory; a symlink naming it is followed, nothing below is) without
// following symlinks and without crossing into other filesystems: a mount point below the
// root (another st_dev, or a bind mount of the same filesystem) is listed with what stat
// shows there, without xattrs, content hash or anything under it. IOError naming the path
// for an entry that cannot be read; an entry that disappears during the walk (ENOENT) is
// left out. Full for a tree of more than options.max_entries entries, a path longer than
// kMaxPathBytes, a directory deeper than kManifestMaxDepth or an entry with more than
// kManifestMaxXattrs xattrs: such a tree is refused, not half-listed.
Result<Manifest> BuildManifest(const std::string& root, const ManifestOptions& options);

// A batch of entries as bytes and back. Encoding appends to *out; the entries must be
// within the limits above (as BuildManifest makes them), or the decoder rejects them.
// Decoding checks every length, limit and path (CheckEntryPath), requires sorted unique
// xattr names and a known file type, and rejects trailing bytes; it never trusts the input
// (Corruption "manifest entry N: field 'x' at byte B: ...", N counting from 0, B from the
// start of `bytes`).
void EncodeManifestEntries(std::span<const ManifestEntry> entries, std::string* out);
Result<Manifest> DecodeManifestEntries(std::string_view bytes);

struct ManifestDiff {
  enum class Kind {
    kMissing,  // in the source, not in the image
    kExtra,    // in the image, not in the source
    kType,     // both, of different types (file vs directory, ...)
    kMeta,     // mode, owner, size, mtime, rdev, target, link_to or xattrs differ
    kContent,  // content hashes differ (both present)
  };
  Kind kind;
  std::string path;
  // What differs, for people, without the path: "missing in the image", "only in the
  // image", "type file vs directory", "size 10 vs 12; mtime <UTC> vs <UTC>; xattr user.a
  // differs", "content differs". Names and paths outside printable ASCII are quoted and
  // escaped (QuoteForMessage), so a hostile name cannot forge a log line.
  std::string detail;
  std::string Describe() const;  // "<path>: <detail>": "a/b: missing in the image"
};

struct ManifestCompareOptions {
  bool mtime = true;    // directories' and files' mtimes
  bool content = true;  // content hashes, where both entries have one
};

// `source` and `image` as BuildManifest makes them (walk order); the differences in walk
// order of the source, then the extra entries of the image (in its walk order). An entry
// whose type differs gets one kType diff; otherwise it may get a kMeta and then a kContent
// diff. nlink is not compared (link_to says which names share an inode).
std::vector<ManifestDiff> CompareManifests(const Manifest& source, const Manifest& image,
                                           const ManifestCompareOptions& options = {});

// Block sums: the first 16 bytes of SHA-256 of each `block_size` block of the file open
// at `fd` (the last block may be short), from offset 0 to its size (fstat; a file that
// shrinks meanwhile ends at its new end). InvalidArgument unless block_size is a power of
// two >= 4096 and fd a regular file.
using BlockSum = std::array<uint8_t, 16>;
Result<std::vector<BlockSum>> FileBlockSums(int fd, uint32_t block_size);
// The sum of `data` (a block read from a file), as FileBlockSums computes it.
BlockSum SumOfBlock(std::string_view data);

}  // namespace mirror::common
