// CompareManifests and the text of its differences (for administrators).
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include <cinttypes>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "common/manifest.h"
#include "common/quote.h"

namespace mirror::common {
namespace {

// Plain names stay as they are ("a/b: missing in the image"); a name with bytes outside
// printable ASCII is quoted and escaped, so it cannot forge or garble a log line.
std::string Printable(std::string_view text) {
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f || c == '"' || c == '\\') return QuoteForMessage(text);
  }
  return std::string(text);
}

std::string_view TypeName(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "file";
    case S_IFDIR:
      return "directory";
    case S_IFLNK:
      return "symlink";
    case S_IFCHR:
      return "character device";
    case S_IFBLK:
      return "block device";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    default:
      return "unknown type";
  }
}

std::string Octal(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%" PRIo32, v);
  return buf;
}

// "2026-11-25 10:01:02.123456789", in UTC.
std::string FormatTime(int64_t ns) {
  constexpr int64_t kBillion = 1'000'000'000;
  int64_t sec = ns / kBillion;
  int64_t frac = ns % kBillion;
  if (frac < 0) {
    frac += kBillion;
    --sec;
  }
  const auto t = static_cast<time_t>(sec);
  struct tm tm {};
  if (gmtime_r(&t, &tm) == nullptr) return std::to_string(ns) + " ns";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%09" PRId64, tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

std::string Device(uint64_t rdev) {
  return std::to_string(major(rdev)) + ":" + std::to_string(minor(rdev));
}

class DetailBuilder {
 public:
  void Add(const std::string& part) {
    if (!text_.empty()) text_ += "; ";
    text_ += part;
  }
  template <class T, class Format>
  void Field(const char* label, const T& a, const T& b, Format format) {
    if (a != b) Add(std::string(label) + " " + format(a) + " vs " + format(b));
  }
  std::string Take() { return std::move(text_); }

 private:
  std::string text_;
};

// "xattr user.a differs", "xattr user.b only in the source", "... only in the image".
void CompareXattrs(const ManifestEntry& s, const ManifestEntry& i, DetailBuilder* d) {
  const std::map<std::string_view, std::string_view> a(s.xattrs.begin(), s.xattrs.end());
  const std::map<std::string_view, std::string_view> b(i.xattrs.begin(), i.xattrs.end());
  auto ia = a.begin();
  auto ib = b.begin();
  while (ia != a.end() || ib != b.end()) {
    if (ib == b.end() || (ia != a.end() && ia->first < ib->first)) {
      d->Add("xattr " + Printable(ia->first) + " only in the source");
      ++ia;
    } else if (ia == a.end() || ib->first < ia->first) {
      d->Add("xattr " + Printable(ib->first) + " only in the image");
      ++ib;
    } else {
      if (ia->second != ib->second) d->Add("xattr " + Printable(ia->first) + " differs");
      ++ia;
      ++ib;
    }
  }
}

// The metadata differences of two entries of the same type; empty when none.
std::string MetaDetail(const ManifestEntry& s, const ManifestEntry& i,
                       const ManifestCompareOptions& options) {
  const uint32_t type = s.mode & S_IFMT;
  auto number = [](auto v) { return std::to_string(v); };
  auto quoted = [](const std::string& v) { return QuoteForMessage(v, '\''); };
  DetailBuilder d;
  d.Field("mode", s.mode, i.mode, Octal);
  d.Field("uid", s.uid, i.uid, number);
  d.Field("gid", s.gid, i.gid, number);
  if (type == S_IFREG || type == S_IFLNK) d.Field("size", s.size, i.size, number);
  // A symlink's mtime is not carried (mirrorfs sets no times on symlinks).
  if (options.mtime && type != S_IFLNK) d.Field("mtime", s.mtime_ns, i.mtime_ns, FormatTime);
  d.Field("rdev", s.rdev, i.rdev, Device);
  d.Field("target", s.target, i.target, quoted);
  d.Field("link_to", s.link_to, i.link_to, quoted);
  CompareXattrs(s, i, &d);
  return d.Take();
}

}  // namespace

std::string ManifestDiff::Describe() const { return Printable(path) + ": " + detail; }

std::vector<ManifestDiff> CompareManifests(const Manifest& source, const Manifest& image,
                                           const ManifestCompareOptions& options) {
  std::unordered_map<std::string_view, const ManifestEntry*> in_image;
  in_image.reserve(image.size());
  for (const ManifestEntry& e : image) in_image.emplace(e.path, &e);  // the first one wins

  std::vector<ManifestDiff> diffs;
  std::unordered_set<std::string_view> in_source;
  in_source.reserve(source.size());
  for (const ManifestEntry& s : source) {
    if (!in_source.insert(s.path).second) continue;  // a repeated path is compared once
    auto found = in_image.find(s.path);
    if (found == in_image.end()) {
      diffs.push_back({ManifestDiff::Kind::kMissing, s.path, "missing in the image"});
      continue;
    }
    const ManifestEntry& i = *found->second;
    if ((s.mode & S_IFMT) != (i.mode & S_IFMT)) {
      diffs.push_back(
          {ManifestDiff::Kind::kType, s.path,
           "type " + std::string(TypeName(s.mode)) + " vs " + std::string(TypeName(i.mode))});
      continue;
    }
    if (std::string meta = MetaDetail(s, i, options); !meta.empty())
      diffs.push_back({ManifestDiff::Kind::kMeta, s.path, std::move(meta)});
    if (options.content && !s.content_hash.empty() && !i.content_hash.empty() &&
        s.content_hash != i.content_hash) {
      diffs.push_back({ManifestDiff::Kind::kContent, s.path, "content differs"});
    }
  }
  std::unordered_set<std::string_view> extra_seen;
  for (const ManifestEntry& i : image) {
    if (in_source.count(i.path) != 0 || !extra_seen.insert(i.path).second) continue;
    diffs.push_back({ManifestDiff::Kind::kExtra, i.path, "only in the image"});
  }
  return diffs;
}

}  // namespace mirror::common
