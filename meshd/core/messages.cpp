#include "meshd/core/messages.hpp"

namespace meshd::core {

std::string_view to_string(EventKind k) {
  switch (k) {
    case EventKind::claim:
      return "claim";
    case EventKind::retraction:
      return "retraction";
    case EventKind::operator_decision:
      return "operator_decision";
    case EventKind::misbehaviour_proof:
      return "misbehaviour_proof";
  }
  return "unknown";
}

}  // namespace meshd::core
