#include "mirrorfs/options.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace mirror::fs;

namespace {

mirror::common::Result<MountOptions> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "mirrorfs");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return ParseMountOptions(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

TEST_CASE("MountFuseFormSplitsOwnDroppedAndPassedOptions") {
  auto o = Parse({"/srv/b", "/mnt/m", "-o",
                  "rw,allow_other,nofail,_netdev,x-systemd.automount,config=/etc/mirrorfs/x.json,"
                  "dev,suid,max_write=65536,auto_unmount"});
  REQUIRE(o.ok());
  CHECK(o->backing == "/srv/b");
  CHECK(o->mountpoint == "/mnt/m");
  CHECK(o->max_write == 65536u);
  CHECK(o->own_options.at("config") == "/etc/mirrorfs/x.json");
  CHECK(o->fuse_options == std::vector<std::string>{"rw", "allow_other", "dev", "suid"});
  CHECK(o->warnings.size() == 1);  // auto_unmount is refused
  CHECK(!o->foreground);
}

TEST_CASE("FuseArgumentsAlwaysNameFsnameSubtypeAndDefaultPermissions") {
  auto o = Parse({"/srv/a,b", "/mnt/m", "-oro", "-d"});
  REQUIRE(o.ok());
  CHECK(o->foreground);
  std::vector<std::string> args = FuseArguments(*o);
  REQUIRE(args.size() == 4);
  CHECK(args[1] == "-o");
  CHECK(args[2] == "fsname=/srv/a\\,b,subtype=mirrorfs,default_permissions,dev,suid,ro");
  CHECK(args[3] == "-d");
}

TEST_CASE("UsageErrorsAreInvalidArgument") {
  CHECK(!Parse({"/only-one"}).ok());
  CHECK(!Parse({"/a", "/b", "/c"}).ok());
  CHECK(!Parse({"/a", "/b", "--bogus"}).ok());
  CHECK(!Parse({"/a", "/b", "-o", "max_write=3"}).ok());
  CHECK(!Parse({"/a", "/b", "-o"}).ok());
  CHECK(Parse({"--help"})->show_help);
  CHECK(Parse({"-V"})->show_version);
}

TEST_CASE("RelativePathsBecomeAbsolute") {
  auto o = Parse({"b", "m"});
  REQUIRE(o.ok());
  CHECK(o->backing.front() == '/');
  CHECK(o->backing.substr(o->backing.size() - 2) == "/b");
}
