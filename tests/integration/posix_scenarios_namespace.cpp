// Namespace scenarios: directories, unlink, rename, links, special files, and the
// rules of sticky and setgid directories and the umask.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <climits>
#include <string>

#include "posix_scenarios.h"

namespace mirror::itest {
namespace {

constexpr gid_t kUsersGroup = 100;  // uid 65534 is not a member

int Mkdir(Ops& o, const char* rel, mode_t mode = 0755) { return ::mkdir(o.P(rel).c_str(), mode); }

int Rename(Ops& o, const char* from, const char* to, unsigned flags = 0) {
  return ::renameat2(AT_FDCWD, o.P(from).c_str(), AT_FDCWD, o.P(to).c_str(), flags);
}

void MkdirRmdir(Ops& o) {
  o.Call("mkdir d", Mkdir(o, "d"));
  o.Call("mkdir d again", Mkdir(o, "d"));
  o.Call("mkdir d/s 0750", Mkdir(o, "d/s", 0750));
  o.Stat("stat d/s", "d/s");
  o.Call("rmdir non-empty", ::rmdir(o.P("d").c_str()));
  o.MakeFile("file", "x");
  o.Call("mkdir over file", Mkdir(o, "file"));
  o.Call("rmdir file", ::rmdir(o.P("file").c_str()));
  o.Call("rmdir missing", ::rmdir(o.P("missing").c_str()));
  o.Call("rmdir dot", ::rmdir(o.P("d/.").c_str()));
  o.Call("mkdir in missing", Mkdir(o, "missing/x"));
  o.Call("rmdir d/s", ::rmdir(o.P("d/s").c_str()));
  o.Call("rmdir d", ::rmdir(o.P("d").c_str()));
  o.Call("mkdir 01777", Mkdir(o, "sticky", 01777));
  o.Stat("stat sticky", "sticky");
  o.Stat("nlink of parent", ".");
}

void Unlink(Ops& o) {
  o.Call("mkdir d", Mkdir(o, "d"));
  o.Call("unlink dir", ::unlink(o.P("d").c_str()));
  o.Call("unlink missing", ::unlink(o.P("missing").c_str()));
  o.MakeFile("f", "data");
  o.Call("symlink l", ::symlink("f", o.P("l").c_str()));
  o.Call("unlink symlink", ::unlink(o.P("l").c_str()));
  o.Stat("target survives", "f");
  o.Call("unlink through file", ::unlink(o.P("f/x").c_str()));
  int fd = o.Open("open f", "f", O_RDONLY);
  o.Call("unlink open file", ::unlink(o.P("f").c_str()));
  char buf[8] = {};
  o.Call("read after unlink", ::read(fd, buf, sizeof(buf)));
  o.Note("data", buf);
  o.Close(fd);
  o.Call("unlinkat AT_REMOVEDIR", ::unlinkat(AT_FDCWD, o.P("d").c_str(), AT_REMOVEDIR));
}

void RenameFiles(Ops& o) {
  o.MakeFile("a", "AAA");
  o.MakeFile("b", "B");
  o.Call("rename over existing", Rename(o, "a", "b"));
  o.Content("b now", "b");
  o.Stat("a gone", "a");
  o.Call("rename missing", Rename(o, "a", "c"));
  o.Call("rename to itself", Rename(o, "b", "b"));
  o.Call("link b h", ::link(o.P("b").c_str(), o.P("h").c_str()));
  o.Call("rename onto own hard link", Rename(o, "b", "h"));
  o.Stat("b still there", "b");
  o.Call("mkdir d", Mkdir(o, "d"));
  o.Call("rename into dir", Rename(o, "h", "d/h"));
  o.Stat("nlink of b", "b");
}

void RenameDirs(Ops& o) {
  o.Call("mkdir d1", Mkdir(o, "d1"));
  o.MakeFile("d1/x", "1");
  o.Call("mkdir d2", Mkdir(o, "d2"));
  o.MakeFile("d2/y", "2");
  o.Call("mkdir empty", Mkdir(o, "empty"));
  o.Call("dir over non-empty dir", Rename(o, "d1", "d2"));
  o.Call("dir into own subdir", Rename(o, "d1", "d1/sub"));
  o.MakeFile("f", "f");
  o.Call("file over dir", Rename(o, "f", "empty"));
  o.Call("dir over file", Rename(o, "d1", "f"));
  o.Call("dir over empty dir", Rename(o, "d1", "empty"));
  o.Call("move dir into other", Rename(o, "empty", "d2/moved"));
  o.Stat("d2 nlink", "d2");
  o.Stat("moved content", "d2/moved/x");
  o.Call("rename dot", Rename(o, "d2/.", "z"));
}

void RenameNoreplace(Ops& o) {
  o.MakeFile("a", "A");
  o.MakeFile("b", "B");
  o.Call("NOREPLACE onto existing", Rename(o, "a", "b", RENAME_NOREPLACE));
  o.Call("NOREPLACE onto new", Rename(o, "a", "c", RENAME_NOREPLACE));
  o.Call("NOREPLACE|EXCHANGE", Rename(o, "b", "c", RENAME_NOREPLACE | RENAME_EXCHANGE));
  o.Content("c", "c");
  o.Content("b", "b");
}

void RenameExchange(Ops& o) {
  o.MakeFile("a", "A");
  o.Call("mkdir d", Mkdir(o, "d"));
  o.MakeFile("d/in", "inside");
  o.Call("EXCHANGE file and dir", Rename(o, "a", "d", RENAME_EXCHANGE));
  o.Stat("a is dir", "a");
  o.Content("d is file", "d");
  o.Content("a/in", "a/in");
  o.Call("EXCHANGE with missing", Rename(o, "a", "nothing", RENAME_EXCHANGE));
  o.MakeFile("x", "X");
  o.MakeFile("y", "Y");
  o.Call("EXCHANGE files", Rename(o, "x", "y", RENAME_EXCHANGE));
  o.Content("x", "x");
  o.Content("y", "y");
}

void Links(Ops& o) {
  o.MakeFile("f", "shared");
  o.Call("link f g", ::link(o.P("f").c_str(), o.P("g").c_str()));
  o.Stat("f nlink 2", "f");
  o.Call("link onto existing", ::link(o.P("f").c_str(), o.P("g").c_str()));
  o.Call("mkdir d", Mkdir(o, "d"));
  o.Call("link a dir", ::link(o.P("d").c_str(), o.P("d2").c_str()));
  o.Call("link missing", ::link(o.P("missing").c_str(), o.P("m2").c_str()));
  o.Call("link into d", ::link(o.P("f").c_str(), o.P("d/h").c_str()));
  o.Stat("f nlink 3", "f");
  int fd = o.Open("open g", "g", O_WRONLY | O_APPEND);
  o.Call("append via g", ::write(fd, "+", 1));
  o.Close(fd);
  o.Content("f sees it", "f");
  o.Call("unlink g", ::unlink(o.P("g").c_str()));
  o.Stat("f nlink 2 again", "f");
}

void Symlinks(Ops& o) {
  o.Call("symlink", ::symlink("target/x", o.P("l").c_str()));
  char buf[PATH_MAX] = {};
  long n = o.Call("readlink", ::readlink(o.P("l").c_str(), buf, sizeof(buf)));
  o.Note("target", std::string(buf, n > 0 ? static_cast<size_t>(n) : 0));
  o.Call("readlink short buffer", ::readlink(o.P("l").c_str(), buf, 3));
  o.Stat("lstat", "l");
  o.Stat("stat dangling", "l", true);
  o.MakeFile("f", "x");
  o.Call("readlink on file", ::readlink(o.P("f").c_str(), buf, sizeof(buf)));
  o.Call("symlink over existing", ::symlink("y", o.P("f").c_str()));
  std::string long_target(4000, 'a');
  o.Call("long target", ::symlink(long_target.c_str(), o.P("long").c_str()));
  o.Stat("lstat long", "long");
  o.Call("empty target", ::symlink("", o.P("empty").c_str()));
  o.Call("dir symlink", ::symlink(".", o.P("self").c_str()));
  o.Stat("through dir symlink", "self/f", true);
}

void MknodFifo(Ops& o) {
  o.Call("mkfifo 0640", ::mkfifo(o.P("p").c_str(), 0640));
  o.Stat("fifo", "p");
  o.Call("mkfifo again", ::mkfifo(o.P("p").c_str(), 0640));
  o.Call("mknod regular", ::mknod(o.P("r").c_str(), S_IFREG | 0600, 0));
  o.Stat("regular", "r");
  o.Call("mknod socket", ::mknod(o.P("s").c_str(), S_IFSOCK | 0644, 0));
  o.Stat("socket", "s");
  int fd = o.Open("open fifo nonblock", "p", O_RDONLY | O_NONBLOCK);
  o.Close(fd);
}

void MknodDevice(Ops& o) {
  o.Call("mknod char 1:3", ::mknod(o.P("null").c_str(), S_IFCHR | 0666, makedev(1, 3)));
  o.Stat("char device", "null");
  int fd = o.Open("open device", "null", O_WRONLY);
  o.Call("write to device", ::write(fd, "x", 1));
  o.Close(fd);
  o.Call("mknod block 7:0", ::mknod(o.P("blk").c_str(), S_IFBLK | 0600, makedev(7, 0)));
}

void StickySetup(Ops& o) {
  o.Call("mkdir s", Mkdir(o, "s", 0777));
  o.Call("chmod s 01777", ::chmod(o.P("s").c_str(), 01777));
  o.MakeFile("s/rootfile", "r", 0666);
  o.Call("chmod rootfile", ::chmod(o.P("s/rootfile").c_str(), 0666));
}

void StickyDir(Ops& o) {
  o.Call("unlink root's file", ::unlink(o.P("s/rootfile").c_str()));
  o.Call("rename root's file", Rename(o, "s/rootfile", "s/moved"));
  o.Call("rename onto root's file", Rename(o, "s/mine", "s/rootfile"));
  o.MakeFile("s/mine", "m", 0644);
  o.Call("rename own over root's", Rename(o, "s/mine", "s/rootfile"));
  o.MakeFile("s/mine2", "m", 0644);
  o.Call("unlink own file", ::unlink(o.P("s/mine2").c_str()));
  int fd = o.Open("write root's 0666 file", "s/rootfile", O_WRONLY);
  o.Close(fd);
}

void SetgidSetup(Ops& o) {
  o.Call("mkdir g", Mkdir(o, "g", 0777));
  o.Call("chown g 0:100", ::chown(o.P("g").c_str(), 0, kUsersGroup));
  o.Call("chmod g 02777", ::chmod(o.P("g").c_str(), 02777));
}

void SetgidDir(Ops& o) {
  o.MakeFile("g/f", "x", 0644);
  o.Stat("file gets dir's gid", "g/f");
  o.Call("mkdir g/sub", Mkdir(o, "g/sub", 0755));
  o.Stat("subdir inherits S_ISGID", "g/sub");
  o.MakeFile("g/sub/deep", "y", 0644);
  o.Stat("deep file gid", "g/sub/deep");
  int fd = o.Open("create 02755 in setgid dir", "g/sgid", O_CREAT | O_WRONLY, 02755);
  o.Close(fd);
  o.Stat("S_ISGID kept only for members", "g/sgid");
  o.Call("mkfifo in g", ::mkfifo(o.P("g/p").c_str(), 0644));
  o.Stat("fifo gid", "g/p");
  o.Call("symlink in g", ::symlink("f", o.P("g/l").c_str()));
  o.Stat("symlink gid", "g/l");
}

void UmaskHonoured(Ops& o) {
  ::umask(027);
  o.MakeFile("f", "x", 0666);
  o.Stat("file 0666 & ~027", "f");
  o.Call("mkdir 0777", Mkdir(o, "d", 0777));
  o.Stat("dir 0777 & ~027", "d");
  o.Call("mkfifo 0666", ::mkfifo(o.P("p").c_str(), 0666));
  o.Stat("fifo 0666 & ~027", "p");
  o.Call("symlink", ::symlink("f", o.P("l").c_str()));
  o.Stat("symlink mode", "l");
  ::umask(0);
  o.MakeFile("open", "x", 0666);
  o.Stat("umask 0", "open");
}

}  // namespace

void AddNamespaceScenarios(std::vector<Scenario>* out) {
  out->push_back({"mkdir_rmdir", nullptr, MkdirRmdir});
  out->push_back({"unlink_rules", nullptr, Unlink});
  out->push_back({"rename_files", nullptr, RenameFiles});
  out->push_back({"rename_dirs", nullptr, RenameDirs});
  out->push_back({"rename_noreplace", nullptr, RenameNoreplace});
  out->push_back({"rename_exchange", nullptr, RenameExchange});
  out->push_back({"link_count", nullptr, Links});
  out->push_back({"symlink_readlink", nullptr, Symlinks});
  out->push_back({"mknod_fifo_socket", nullptr, MknodFifo});
  out->push_back({"mknod_device", nullptr, MknodDevice});
  out->push_back({"sticky_dir", StickySetup, StickyDir});
  out->push_back({"setgid_dir", SetgidSetup, SetgidDir});
  out->push_back({"umask_honoured", nullptr, UmaskHonoured});
}

const std::vector<Scenario>& PosixScenarios() {
  static const std::vector<Scenario> all = [] {
    std::vector<Scenario> v;
    AddFileScenarios(&v);
    AddMetadataScenarios(&v);
    AddNamespaceScenarios(&v);
    return v;
  }();
  return all;
}

}  // namespace mirror::itest
