// trust/ must stay sans-I/O (README.md "Design": the one rule of the architecture): this test fails
// if a source file in trust/ includes or calls something that does I/O, reads a clock, draws
// its own randomness or starts threads.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

TEST(TrustSansIo, NoClocksThreadsSocketsOrOwnRandomness) {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(MESHD_SOURCE_DIR) / "trust";
  ASSERT_TRUE(fs::exists(root)) << root;
  const char* forbidden[] = {"<chrono>",       "<thread>",      "<mutex>",       "<atomic>",
                             "<future>",       "<random>",      "<fstream>",     "<iostream>",
                             "<sys/socket.h>", "<netinet/",     "<arpa/inet.h>", "asio",
                             "libbpf",         "random_device", "rand(",         "::now(",
                             "time(nullptr)",  "getenv",        "<ctime>",       "<unistd.h>"};
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    auto ext = entry.path().extension();
    if (ext != ".cpp" && ext != ".hpp") continue;
    ++files;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    for (const char* f : forbidden)
      EXPECT_EQ(text.find(f), std::string::npos) << entry.path() << " uses " << f;
  }
  EXPECT_GE(files, 10);
}

}  // namespace
