#include "src/ckpt/completion.h"

#include <utility>

#include "absl/strings/cord.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

class LocalCommit final : public Completion {
 public:
  explicit LocalCommit(Repository* repo) : repo_(repo) {}
  absl::Status CheckOptions(const CheckpointOptions& options) const override {
    if (!options.id.has_value()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        "CheckpointOptions::id is for group members only: this checkpointer reserves its own ids");
  }
  bool reserves_ids() const override { return true; }
  bool outcomes_announced() const override { return false; }
  absl::StatusOr<CommitRecord> ReadBase(uint64_t id) const override {
    return repo_->ReadCommit(id);
  }
  absl::StatusOr<bool> Publish(const CommitRecord& record) override {
    if (absl::Status s = repo_->PublishCommit(record); !s.ok()) {
      absl::Status out(s.code(), StrCat("checkpoint ", record.id,
                                        ": publishing the commit record failed: ", s.message()));
      // Keep the marks (IsParentRemoved's) that tell the checkpointer how to go on.
      s.ForEachPayload([&out](absl::string_view url, const absl::Cord& payload) {
        out.SetPayload(url, payload);
      });
      return out;
    }
    return true;
  }

 private:
  Repository* repo_;
};

class GroupAcknowledgement final : public Completion {
 public:
  GroupAcknowledgement(Repository* repo, std::string participant)
      : repo_(repo), participant_(std::move(participant)) {}
  absl::Status CheckOptions(const CheckpointOptions& options) const override {
    if (options.id.has_value()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        "a group member's checkpoint needs the group's checkpoint id (CheckpointOptions::id)");
  }
  bool reserves_ids() const override { return false; }
  bool outcomes_announced() const override { return true; }
  absl::StatusOr<CommitRecord> ReadBase(uint64_t id) const override {
    absl::StatusOr<CommitRecord> commit = repo_->ReadCommit(id);
    // The group may not have committed it yet: this participant's acknowledgement holds its part.
    if (absl::IsNotFound(commit.status())) return repo_->ReadAck(id, participant_);
    return commit;
  }
  absl::StatusOr<bool> Publish(const CommitRecord& record) override {
    if (absl::Status s = repo_->PublishAck(record); !s.ok()) {
      return absl::Status(s.code(),
                          StrCat("checkpoint ", record.id,
                                 ": publishing the acknowledgement failed: ", s.message()));
    }
    return false;
  }

 private:
  Repository* repo_;
  std::string participant_;
};

}  // namespace

std::unique_ptr<Completion> NewLocalCommit(Repository* repo) {
  return std::make_unique<LocalCommit>(repo);
}

std::unique_ptr<Completion> NewGroupAcknowledgement(Repository* repo, std::string participant) {
  return std::make_unique<GroupAcknowledgement>(repo, std::move(participant));
}

}  // namespace ickpt
