// The meshsim binary: one JSON object on stdout, identical for the same seed apart from
// wall_s and peak_rss_mb (host measurements), exit code 2 with the key named for bad scenario
// files, --out writes the CSV and SVG files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/wait.h>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace {

namespace fs = std::filesystem;

struct Proc {
  int code = -1;
  std::string out;
  std::string err;
};

class MeshsimCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("meshsim_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }

  Proc run(const std::string& args) {
    const std::string err = (dir_ / "stderr.txt").string();
    const std::string cmd = std::string(MESHSIM_BIN) + " " + args + " 2>" + err;
    Proc p;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (!f) return p;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) p.out.append(buf, n);
    const int status = ::pclose(f);
    p.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream in(err);
    p.err.assign(std::istreambuf_iterator<char>(in), {});
    return p;
  }

  fs::path dir_;
};

const char* kSmall = R"(
name: cli-small
nodes: 60
degree: 4
domains: 6
duration_s: 200
traffic: {services: 40}
attacks: [{targets: 10, detect_prob: 0.1, start_s: 10, spread_s: 60}]
adversaries: [{count: 1, strategy: random, rate_per_min: 30, start_s: 80}]
)";

nlohmann::json strip_host(nlohmann::json j) {
  j.erase("wall_s");
  j.erase("peak_rss_mb");
  return j;
}

TEST_F(MeshsimCli, PrintsOneJsonObjectWithRequiredFields) {
  auto p = run("--scenario " + write("s.yaml", kSmall) + " --seed 4");
  ASSERT_EQ(p.code, 0) << p.err;
  auto j = nlohmann::json::parse(p.out);  // throws (test fails) if not one JSON document
  for (const char* k : {"scenario", "policy", "nodes", "seed", "wall_s", "tp", "harm", "quarantine",
                        "messages", "delivery", "peak_rss_mb"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["scenario"], "cli-small");
  EXPECT_EQ(j["seed"], 4);
  EXPECT_EQ(j["nodes"], 60);
  for (const char* k : {"total", "protected", "naive_total", "ratio_vs_naive"})
    EXPECT_TRUE(j["harm"].contains(k)) << k;
  EXPECT_TRUE(j["tp"].contains("coverage"));
  EXPECT_TRUE(j["delivery"].contains("p99_ms"));
  EXPECT_TRUE(j["quarantine"].contains("detected"));
  EXPECT_TRUE(j["messages"].contains("per_node_per_claim"));
}

TEST_F(MeshsimCli, SameSeedSameJsonApartFromHostMeasurements) {
  const auto f = write("s.yaml", kSmall);
  auto a = run("--scenario " + f + " --seed 12");
  auto b = run("--scenario " + f + " --seed 12");
  auto c = run("--scenario " + f + " --seed 13 --policy quorum:2");
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(strip_host(nlohmann::json::parse(a.out)), strip_host(nlohmann::json::parse(b.out)));
  auto jc = nlohmann::json::parse(c.out);
  EXPECT_EQ(jc["policy"], "quorum:2");
  EXPECT_NE(strip_host(nlohmann::json::parse(a.out)), strip_host(jc));
}

// --progress only adds lines on stderr: one per interval and one per run at its end (simulated
// time, events/s, RSS); the JSON is the same as without it.
TEST_F(MeshsimCli, ProgressPrintsLinesOnStderrAndChangesNoResult) {
  const auto f = write("s.yaml", kSmall);
  auto plain = run("--scenario " + f + " --seed 5");
  auto prog = run("--scenario " + f + " --seed 5 --progress --progress-every 0.001");
  ASSERT_EQ(plain.code, 0) << plain.err;
  ASSERT_EQ(prog.code, 0) << prog.err;
  EXPECT_EQ(strip_host(nlohmann::json::parse(plain.out)),
            strip_host(nlohmann::json::parse(prog.out)));
  EXPECT_EQ(plain.err.find("meshsim: progress"), std::string::npos) << plain.err;
  for (const char* policy : {"trust", "naive"}) {
    const std::string done = std::string("meshsim: progress ") + policy + " done sim 200.0/200.0 s";
    EXPECT_NE(prog.err.find(done), std::string::npos) << prog.err;
  }
  for (const char* part : {" events/s", ", RSS ", " MB, wall "})
    EXPECT_NE(prog.err.find(part), std::string::npos) << part << "\n" << prog.err;
  auto bad = run("--scenario " + f + " --progress-every 0");
  EXPECT_EQ(bad.code, 2);
}

TEST_F(MeshsimCli, BadScenarioFilesExitTwoNamingTheKey) {
  struct Case {
    const char* yaml;
    const char* key;
  } cases[] = {{"nodes: 50\nspeed: 3\n", "speed"},
               {"adversaries:\n  - {count: 1, strategy: bribe}\n", "adversaries[0].strategy"},
               {"link: {latency_ms: fast}\n", "link.latency_ms"},
               {"policy_params: {t_cap: 2}\n", "t_cap"}};
  for (const auto& c : cases) {
    auto p = run("--scenario " + write("bad.yaml", c.yaml));
    EXPECT_EQ(p.code, 2) << c.yaml;
    EXPECT_TRUE(p.out.empty()) << p.out;
    EXPECT_NE(p.err.find(c.key), std::string::npos) << p.err;
    EXPECT_NE(p.err.find("bad.yaml"), std::string::npos) << p.err;
  }
  auto missing = run("--scenario " + (dir_ / "nope.yaml").string());
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("nope.yaml"), std::string::npos) << missing.err;
  EXPECT_EQ(run("--scenario " + write("ok.yaml", kSmall) + " --policy best").code, 2);
  EXPECT_EQ(run("--bogus").code, 2);
}

TEST_F(MeshsimCli, OutWritesTimeSeriesAndPlots) {
  const auto out = dir_ / "out";
  auto p = run("--scenario " + write("s.yaml", kSmall) + " --out " + out.string());
  ASSERT_EQ(p.code, 0) << p.err;
  for (const char* f : {"timeseries.csv", "delivery_cdf.csv", "delivery_cdf.svg", "harm.svg",
                        "report.json", "quarantine.csv"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  std::ifstream svg(out / "harm.svg");
  std::string text((std::istreambuf_iterator<char>(svg)), {});
  EXPECT_NE(text.find("<svg"), std::string::npos);
  EXPECT_NE(text.find("naive"), std::string::npos);  // both policies plotted
  EXPECT_NE(text.find("<polyline"), std::string::npos);
  std::ifstream csv(out / "timeseries.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header.rfind("t_s,policy,harm_rate", 0), 0u);
}

}  // namespace
