// A fresh directory under the system temp dir for one test, removed with everything in it on
// scope exit. The one copy every test uses.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace meshd::testing {

class TempDir {
 public:
  // `tag` names the test area in the directory name (/tmp/meshd-<tag>-XXXXXX), so a leftover
  // says who left it.
  explicit TempDir(std::string_view tag = "test") {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / ("meshd-" + std::string(tag) + "-XXXXXX"))
            .string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl + " failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }
  // The same as a string, for APIs that take one.
  std::string file(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace meshd::testing
