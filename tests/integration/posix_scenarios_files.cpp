// File scenarios: open flags, reads and writes, sizes, preallocation and holes,
// fds that outlive their name, syncs, O_DIRECT, locks and directory listings.
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <set>
#include <string>

#include "posix_scenarios.h"

namespace mirror::itest {
namespace {

void OpenCreateExcl(Ops& o) {
  int fd = o.Open("create f", "f", O_CREAT | O_WRONLY, 0644);
  o.Close(fd);
  o.Open("O_CREAT|O_EXCL on existing", "f", O_CREAT | O_EXCL | O_WRONLY, 0644);
  o.Open("O_RDONLY on missing", "missing", O_RDONLY);
  o.Close(o.Open("O_EXCL without O_CREAT", "f", O_EXCL | O_RDONLY));
  o.Close(o.Open("O_CREAT|O_EXCL new", "g", O_CREAT | O_EXCL | O_RDWR, 0600));
  o.Open("O_CREAT in missing dir", "nodir/x", O_CREAT | O_WRONLY, 0644);
  o.Stat("stat g", "g");
}

void OpenTrunc(Ops& o) {
  o.MakeFile("f", "hello world");
  int fd = o.Open("open O_TRUNC", "f", O_TRUNC | O_WRONLY);
  struct stat st = {};
  o.Call("fstat", ::fstat(fd, &st));
  o.Note("size after O_TRUNC", std::to_string(st.st_size));
  o.Call("write abc", ::write(fd, "abc", 3));
  o.Close(fd);
  o.Content("content", "f");
}

void OpenAppend(Ops& o) {
  o.MakeFile("f", "12345");
  int fd = o.Open("open O_APPEND", "f", O_APPEND | O_WRONLY);
  o.Call("write ab", ::write(fd, "ab", 2));
  o.Call("lseek 0", ::lseek(fd, 0, SEEK_SET));
  o.Call("write cd", ::write(fd, "cd", 2));
  o.Call("offset after", ::lseek(fd, 0, SEEK_CUR));
  o.Close(fd);
  o.Content("content", "f");
}

void OpenDirectoryFlag(Ops& o) {
  o.MakeFile("f", "x");
  o.Call("mkdir d", ::mkdir(o.P("d").c_str(), 0755));
  o.Open("O_DIRECTORY on file", "f", O_DIRECTORY | O_RDONLY);
  o.Open("O_WRONLY on dir", "d", O_WRONLY);
  o.Close(o.Open("O_DIRECTORY on dir", "d", O_DIRECTORY | O_RDONLY));
  o.Open("O_CREAT on dir", "d", O_CREAT | O_RDONLY, 0644);
}

void OpenNofollow(Ops& o) {
  o.MakeFile("f", "target");
  o.Call("symlink l -> f", ::symlink("f", o.P("l").c_str()));
  o.Open("O_NOFOLLOW on symlink", "l", O_NOFOLLOW | O_RDONLY);
  o.Close(o.Open("O_PATH|O_NOFOLLOW on symlink", "l", O_PATH | O_NOFOLLOW));
  o.Content("follow l", "l");
  o.Call("symlink dangling -> made", ::symlink("made", o.P("dangling").c_str()));
  o.Open("O_RDONLY on dangling", "dangling", O_RDONLY);
  o.Open("O_CREAT|O_EXCL on dangling", "dangling", O_CREAT | O_EXCL | O_WRONLY, 0644);
  o.Close(o.Open("O_CREAT on dangling creates target", "dangling", O_CREAT | O_WRONLY, 0640));
  o.Stat("stat made", "made");
}

void ReadWrite(Ops& o) {
  int fd = o.Open("create", "f", O_CREAT | O_RDWR, 0644);
  o.Call("write 10", ::write(fd, "0123456789", 10));
  char buf[64] = {};
  o.Call("pread 4 at 3", ::pread(fd, buf, 4, 3));
  o.Note("pread data", std::string(buf, 4));
  o.Call("pwrite at 20", ::pwrite(fd, "XY", 2, 20));
  o.Call("offset unchanged by pwrite", ::lseek(fd, 0, SEEK_CUR));
  o.Call("lseek 8", ::lseek(fd, 8, SEEK_SET));
  long n = o.Call("read to 22", ::read(fd, buf, sizeof(buf)));
  o.Note("read data", std::string(buf, n > 0 ? static_cast<size_t>(n) : 0));
  o.Call("read at EOF", ::read(fd, buf, sizeof(buf)));
  o.Call("pread past EOF", ::pread(fd, buf, 4, 1000));
  o.Close(fd);
  int ro = o.Open("open O_RDONLY", "f", O_RDONLY);
  o.Call("write on O_RDONLY", ::write(ro, "z", 1));
  o.Close(ro);
  int wo = o.Open("open O_WRONLY", "f", O_WRONLY);
  o.Call("read on O_WRONLY", ::read(wo, buf, 1));
  o.Call("pwrite 1 MiB offset", ::pwrite(wo, "end", 3, 1 << 20));
  o.Close(wo);
  o.Stat("stat f", "f");
}

void Truncate(Ops& o) {
  o.MakeFile("f", "abcdefgh");
  o.Call("truncate grow 100", ::truncate(o.P("f").c_str(), 100));
  o.Stat("stat grown", "f");
  o.Call("truncate shrink 3", ::truncate(o.P("f").c_str(), 3));
  o.Call("truncate missing", ::truncate(o.P("missing").c_str(), 0));
  o.Call("mkdir d", ::mkdir(o.P("d").c_str(), 0755));
  o.Call("truncate dir", ::truncate(o.P("d").c_str(), 0));
  o.Call("truncate negative", ::truncate(o.P("f").c_str(), -1));
  int rw = o.Open("open rw", "f", O_RDWR);
  o.Call("ftruncate 5000", ::ftruncate(rw, 5000));
  o.Call("ftruncate 2", ::ftruncate(rw, 2));
  o.Close(rw);
  int ro = o.Open("open ro", "f", O_RDONLY);
  o.Call("ftruncate on O_RDONLY", ::ftruncate(ro, 0));
  o.Close(ro);
  o.Content("content", "f");
}

void Fallocate(Ops& o) {
  int fd = o.Open("create", "f", O_CREAT | O_RDWR, 0644);
  o.Call("fallocate 0..8192", ::fallocate(fd, 0, 0, 8192));
  o.Stat("size after plain", "f");
  o.Call("KEEP_SIZE beyond EOF", ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 8192, 65536));
  o.Stat("size after KEEP_SIZE", "f");
  std::string data(8192, 'd');
  o.Call("fill", ::pwrite(fd, data.data(), data.size(), 0));
  o.Call("PUNCH_HOLE|KEEP_SIZE 4096", ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
  o.Call("PUNCH_HOLE without KEEP_SIZE", ::fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096));
  o.Call("ZERO_RANGE 5000..6000", ::fallocate(fd, FALLOC_FL_ZERO_RANGE, 5000, 1000));
  o.Call("ZERO_RANGE past EOF", ::fallocate(fd, FALLOC_FL_ZERO_RANGE, 8192, 100));
  o.Call("fallocate bad length", ::fallocate(fd, 0, 0, 0));
  o.Close(fd);
  o.Stat("stat f", "f");
  o.Content("content", "f");
}

void CopyFileRange(Ops& o) {
  std::string src(10000, 's');
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<char>('a' + i % 26);
  o.MakeFile("src", src);
  o.MakeFile("dst", "0123456789");
  int in = o.Open("open src", "src", O_RDONLY);
  int out = o.Open("open dst", "dst", O_RDWR);
  loff_t off_in = 100, off_out = 5;
  o.Call("copy 4000 at 100 -> 5", ::copy_file_range(in, &off_in, out, &off_out, 4000, 0));
  o.Note("offsets", std::to_string(off_in) + " " + std::to_string(off_out));
  off_in = 20000;
  o.Call("copy from past EOF", ::copy_file_range(in, &off_in, out, &off_out, 10, 0));
  o.Call("copy with cursor", ::copy_file_range(in, nullptr, out, nullptr, 50, 0));
  loff_t a = 0, b = 10;
  o.Call("overlap in one file", ::copy_file_range(out, &a, out, &b, 100, 0));
  o.Call("into O_RDONLY fd", ::copy_file_range(out, nullptr, in, nullptr, 10, 0));
  o.Call("bad flags", ::copy_file_range(in, nullptr, out, nullptr, 10, 1));
  o.Close(in);
  o.Close(out);
  o.Content("content dst", "dst");
}

void SeekDataHole(Ops& o) {
  int fd = o.Open("create", "f", O_CREAT | O_RDWR, 0644);
  o.Call("pwrite at 1 MiB", ::pwrite(fd, "x", 1, 1 << 20));
  o.Call("fsync", ::fsync(fd));
  o.Call("SEEK_DATA 0", ::lseek(fd, 0, SEEK_DATA));
  o.Call("SEEK_HOLE 0", ::lseek(fd, 0, SEEK_HOLE));
  o.Call("SEEK_HOLE at data", ::lseek(fd, 1 << 20, SEEK_HOLE));
  o.Call("SEEK_DATA past EOF", ::lseek(fd, (1 << 20) + 10, SEEK_DATA));
  o.Call("SEEK_HOLE past EOF", ::lseek(fd, (1 << 20) + 10, SEEK_HOLE));
  o.Call("SEEK_END -1", ::lseek(fd, -1, SEEK_END));
  o.Call("SEEK_SET negative", ::lseek(fd, -5, SEEK_SET));
  o.Close(fd);
}

void StatfsWorks(Ops& o) {
  struct statfs sf = {};
  o.Call("statfs", ::statfs(o.dir().c_str(), &sf));
  o.Note("namelen", std::to_string(sf.f_namelen));
  o.Note("sane", (sf.f_bsize > 0 && sf.f_blocks > 0 && sf.f_bfree <= sf.f_blocks) ? "yes" : "no");
  o.Call("statfs missing", ::statfs(o.P("missing").c_str(), &sf));
  int fd = o.Open("open dir", ".", O_RDONLY | O_DIRECTORY);
  o.Call("fstatfs", ::fstatfs(fd, &sf));
  o.Close(fd);
}

void FdAfterRenameAndUnlink(Ops& o) {
  o.MakeFile("a", "A");
  int fd = o.Open("open a", "a", O_WRONLY | O_APPEND);
  o.Call("rename a -> b", ::rename(o.P("a").c_str(), o.P("b").c_str()));
  o.Call("write via renamed fd", ::write(fd, "+renamed", 8));
  o.Close(fd);
  o.Content("b has it", "b");
  fd = o.Open("open b", "b", O_WRONLY | O_APPEND);
  o.Call("unlink b", ::unlink(o.P("b").c_str()));
  o.MakeFile("b", "new b");
  o.Call("write via unlinked fd", ::write(fd, "+lost", 5));
  struct stat st = {};
  o.Call("fstat unlinked", ::fstat(fd, &st));
  o.Note("unlinked nlink and size", std::to_string(st.st_nlink) + " " + std::to_string(st.st_size));
  o.Close(fd);
  o.Content("new b untouched", "b");
}

void SyncsAndDirect(Ops& o) {
  int fd = o.Open("create", "f", O_CREAT | O_RDWR, 0644);
  o.Call("write", ::write(fd, "sync me", 7));
  o.Call("fsync", ::fsync(fd));
  o.Call("fdatasync", ::fdatasync(fd));
  o.Call("syncfs", ::syncfs(fd));
  o.Close(fd);
  int dir = o.Open("open dir", ".", O_RDONLY | O_DIRECTORY);
  o.Call("fsync dir", ::fsync(dir));
  o.Close(dir);
  int direct = o.Open("open O_DIRECT", "direct", O_CREAT | O_RDWR | O_DIRECT, 0644);
  void* buf = nullptr;
  if (posix_memalign(&buf, 4096, 8192) == 0) {
    memset(buf, 'D', 8192);
    o.Call("aligned O_DIRECT write", ::pwrite(direct, buf, 8192, 0));
    memset(buf, 0, 8192);
    o.Call("aligned O_DIRECT read", ::pread(direct, buf, 4096, 4096));
    o.Note("read byte", std::string(static_cast<char*>(buf), 1));
    free(buf);
  }
  o.Close(direct);
  o.Stat("direct", "direct");
}

void FlockRules(Ops& o) {
  o.MakeFile("f", "x");
  int a = o.Open("open a", "f", O_RDONLY);
  int b = o.Open("open b", "f", O_RDONLY);
  o.Call("flock a EX", ::flock(a, LOCK_EX | LOCK_NB));
  o.Call("flock b EX conflicts", ::flock(b, LOCK_EX | LOCK_NB));
  o.Call("flock b SH conflicts", ::flock(b, LOCK_SH | LOCK_NB));
  o.Call("unlock a", ::flock(a, LOCK_UN));
  o.Call("flock b SH", ::flock(b, LOCK_SH | LOCK_NB));
  o.Call("flock a SH shares", ::flock(a, LOCK_SH | LOCK_NB));
  struct flock fl = {};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  o.Call("fcntl F_SETLK read", ::fcntl(a, F_SETLK, &fl));
  fl.l_type = F_WRLCK;
  o.Call("fcntl F_SETLK write on O_RDONLY", ::fcntl(a, F_SETLK, &fl));
  o.Close(a);
  o.Close(b);
}

void ReaddirListing(Ops& o) {
  o.Call("mkdir d", ::mkdir(o.P("d").c_str(), 0755));
  o.MakeFile("d/file", "x");
  o.Call("mkdir d/sub", ::mkdir(o.P("d/sub").c_str(), 0755));
  o.Call("symlink d/link", ::symlink("file", o.P("d/link").c_str()));
  o.Call("mkfifo d/fifo", ::mkfifo(o.P("d/fifo").c_str(), 0644));
  for (int i = 0; i < 300; ++i) {  // more than one readdir buffer
    std::string name = "d/many" + std::to_string(i);
    ::close(::open(o.P(name).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  }
  o.Call("unlink d/many7", ::unlink(o.P("d/many7").c_str()));
  DIR* dir = ::opendir(o.P("d").c_str());
  o.Call("opendir", dir != nullptr ? 0 : -1);
  if (dir == nullptr) return;
  std::set<std::string> seen;
  while (struct dirent* e = ::readdir(dir)) {
    seen.insert(std::string(e->d_name) + ":" + std::to_string(e->d_type));
  }
  ::rewinddir(dir);
  size_t again = 0;
  while (::readdir(dir) != nullptr) ++again;
  ::closedir(dir);
  std::string all;
  for (const std::string& s : seen) all += s + " ";
  o.Note("entries with d_type", all);
  o.Note("count after rewind", std::to_string(again));
  o.Call("opendir on file", ::opendir(o.P("d/file").c_str()) != nullptr ? 0 : -1);
}

}  // namespace

void AddFileScenarios(std::vector<Scenario>* out) {
  out->push_back({"open_creat_excl", nullptr, OpenCreateExcl});
  out->push_back({"open_trunc", nullptr, OpenTrunc});
  out->push_back({"open_append", nullptr, OpenAppend});
  out->push_back({"open_directory_flag", nullptr, OpenDirectoryFlag});
  out->push_back({"open_nofollow_symlink", nullptr, OpenNofollow});
  out->push_back({"read_write_pread_pwrite", nullptr, ReadWrite});
  out->push_back({"truncate_ftruncate", nullptr, Truncate});
  out->push_back({"fallocate_modes", nullptr, Fallocate});
  out->push_back({"copy_file_range", nullptr, CopyFileRange});
  out->push_back({"lseek_data_hole", nullptr, SeekDataHole});
  out->push_back({"statfs_works", nullptr, StatfsWorks});
  out->push_back({"fd_after_rename_and_unlink", nullptr, FdAfterRenameAndUnlink});
  out->push_back({"syncs_and_o_direct", nullptr, SyncsAndDirect});
  out->push_back({"flock_and_fcntl_locks", nullptr, FlockRules});
  out->push_back({"readdir_listing", nullptr, ReaddirListing});
}

}  // namespace mirror::itest
