#include "sensor/falco_endpoint.hpp"

#include <gtest/gtest.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

namespace meshd::sensor {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct Reply {
  unsigned status = 0;
  std::string body;
};

// A plain blocking HTTP/1.1 client, as falcosidekick's webhook output behaves.
Reply post(const tcp::endpoint& ep, http::verb verb, const std::string& body) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(ep);
  http::request<http::string_body> req{verb, "/", 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  req.set(http::field::user_agent, "Falcosidekick");
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  beast::error_code ec;
  http::read(stream, buf, res, ec);
  if (ec) return Reply{0, ec.message()};
  return Reply{res.result_int(), res.body()};
}

class EndpointFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    FalcoEndpointOptions opt;
    opt.max_body_bytes = 4096;
    endpoint_ = std::make_unique<FalcoEndpoint>(
        io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0),
        [this](const FalcoAlert& a, const std::optional<Detection>& d) {
          std::lock_guard lock(mu_);
          rules_.push_back(a.rule);
          if (d) detections_.push_back(*d);
        },
        opt);
    auto started = endpoint_->start();
    ASSERT_TRUE(started) << started.error().message;
    work_.emplace(asio::make_work_guard(io_));
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    endpoint_->stop();
    work_.reset();
    thread_.join();
  }

  asio::io_context io_;
  std::unique_ptr<FalcoEndpoint> endpoint_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> rules_;
  std::vector<Detection> detections_;
};

TEST_F(EndpointFixture, AcceptsFalcosidekickPostAndMapsTheDestination) {
  const std::string alert =
      R"json({"uuid":"1","output":"Critical Outbound connection to C2 server (connection=10.244.1.17:43122->203.0.113.7:4444)",
    "priority":"Critical","rule":"Outbound Connection to C2 Servers","time":"2024-03-01T12:00:00.5Z",
    "source":"syscall","hostname":"node-1","tags":["network"],
    "output_fields":{"fd.name":"10.244.1.17:43122->203.0.113.7:4444","fd.sip":"203.0.113.7","fd.cip":"10.244.1.17",
      "fd.sport":4444,"evt.type":"connect","k8s.pod.name":"web-1","k8s.ns.name":"shop"}})json";
  auto r = post(endpoint_->local_endpoint(), http::verb::post, alert);
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_NE(r.body.find(R"("mapped":true)"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("prefix":"203.0.113.7")"), std::string::npos) << r.body;
  std::lock_guard lock(mu_);
  ASSERT_EQ(detections_.size(), 1u);
  EXPECT_EQ(detections_[0].prefix, *Prefix::parse("203.0.113.7"));
  EXPECT_EQ(detections_[0].direction, Direction::egress);
  EXPECT_EQ(detections_[0].identity.pod_name, "web-1");
  EXPECT_EQ(detections_[0].at, 1709294400500);
}

TEST_F(EndpointFixture, AlertWithoutDestinationIsAcceptedUnmapped) {
  auto r = post(
      endpoint_->local_endpoint(), http::verb::post,
      R"({"output":"shell","priority":"Notice","rule":"Terminal shell in container","output_fields":{}})");
  EXPECT_EQ(r.status, 200u);
  EXPECT_NE(r.body.find(R"("mapped":false)"), std::string::npos);
  std::lock_guard lock(mu_);
  EXPECT_EQ(rules_.size(), 1u);
  EXPECT_TRUE(detections_.empty());
}

TEST_F(EndpointFixture, BadJsonGets400WithReasonAndIsCounted) {
  auto r = post(endpoint_->local_endpoint(), http::verb::post, "{\"rule\": ");
  EXPECT_EQ(r.status, 400u);
  EXPECT_NE(r.body.find("not valid JSON"), std::string::npos) << r.body;
  auto missing = post(endpoint_->local_endpoint(), http::verb::post,
                      R"({"priority":"Critical","output":"x"})");
  EXPECT_EQ(missing.status, 400u);
  EXPECT_NE(missing.body.find("'rule' is missing"), std::string::npos) << missing.body;
  EXPECT_EQ(endpoint_->stats().bad_alert, 2u);
  std::lock_guard lock(mu_);
  EXPECT_TRUE(rules_.empty());
}

TEST_F(EndpointFixture, WrongMethodAndOversizedBodiesAreRejected) {
  EXPECT_EQ(post(endpoint_->local_endpoint(), http::verb::get, "").status, 405u);
  auto big = post(endpoint_->local_endpoint(), http::verb::post, std::string(10000, ' '));
  EXPECT_EQ(big.status, 413u) << big.body;
  auto s = endpoint_->stats();
  EXPECT_EQ(s.bad_method, 1u);
  EXPECT_EQ(s.too_large, 1u);
}

TEST_F(EndpointFixture, KeepAliveConnectionServesSeveralAlerts) {
  beast::tcp_stream stream(io_);  // only used synchronously from this thread
  stream.connect(endpoint_->local_endpoint());
  beast::flat_buffer buf;
  for (int i = 0; i < 3; ++i) {
    http::request<http::string_body> req{http::verb::post, "/falco", 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(true);
    req.body() = R"({"output":"x","priority":"Error","rule":"r)" + std::to_string(i) +
                 R"(","output_fields":{"fd.rip":"198.51.100.)" + std::to_string(i + 1) + R"("}})";
    req.prepare_payload();
    http::write(stream, req);
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    EXPECT_EQ(res.result_int(), 200u) << res.body();
  }
  std::lock_guard lock(mu_);
  EXPECT_EQ(detections_.size(), 3u);
  EXPECT_EQ(endpoint_->stats().accepted, 3u);
}

TEST(FalcoEndpoint, ListenErrorNamesTheAddress) {
  asio::io_context io;
  FalcoEndpoint a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), nullptr);
  ASSERT_TRUE(a.start());
  FalcoEndpoint b(io, a.local_endpoint(), nullptr);
  auto r = b.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "listen_failed");
  EXPECT_NE(r.error().message.find("127.0.0.1:" + std::to_string(a.local_endpoint().port())),
            std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace meshd::sensor
