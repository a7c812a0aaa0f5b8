// The daemon's map between transport connections, core peer ids and node ids.
#include "meshd/app/peer_directory.hpp"

#include <gtest/gtest.h>

#include <map>

namespace meshd::app {
namespace {

TEST(PeerDirectory, ANodeKeepsItsCoreIdAcrossReconnects) {
  PeerDirectory d;
  const core::PeerId a = d.connected(10, "node-a");
  const core::PeerId b = d.connected(11, "node-b");
  EXPECT_NE(a, b);
  EXPECT_EQ(d.disconnected(10), a);
  EXPECT_FALSE(d.core_of(10));
  EXPECT_FALSE(d.connection_of(a));
  EXPECT_EQ(d.connected(12, "node-a"), a);  // the core keeps ban state under this id
  EXPECT_EQ(d.connection_of(a), 12u);
  EXPECT_EQ(d.core_of_node("node-a"), a);
  EXPECT_EQ(d.node_of(a), "node-a");
}

TEST(PeerDirectory, AReplacedDuplicateConnectionLeavesTheNodeUp) {
  PeerDirectory d;
  const core::PeerId a = d.connected(10, "node-a");
  EXPECT_EQ(d.connected(11, "node-a"), a);  // second connection replaces the first
  EXPECT_FALSE(d.disconnected(10));         // the old one going away is not the node going
  EXPECT_EQ(d.connection_of(a), 11u);
  EXPECT_EQ(d.disconnected(11), a);
  EXPECT_FALSE(d.disconnected(11));  // already gone
}

TEST(PeerDirectory, UnknownIdsAreEmpty) {
  PeerDirectory d;
  EXPECT_FALSE(d.core_of(1));
  EXPECT_FALSE(d.core_of_node("nobody"));
  EXPECT_FALSE(d.connection_of(1));
  EXPECT_EQ(d.node_of(1), "");
}

TEST(PeerDirectory, VisitsExactlyTheConnectedNodes) {
  PeerDirectory d;
  d.connected(10, "node-a");
  const core::PeerId b = d.connected(11, "node-b");
  d.connected(12, "node-c");
  ASSERT_TRUE(d.disconnected(12));
  std::map<core::PeerId, std::string> seen;
  d.for_each_connected([&](core::PeerId p, const std::string& n) { seen[p] = n; });
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[b], "node-b");
}

}  // namespace
}  // namespace meshd::app
