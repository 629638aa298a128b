def test_two_members_chat(chat):
    alice = chat.join("alice")
    bob = chat.join("bob")
    assert alice.expect("joined")["members"] == 2
    bob.send_json({"type": "say", "text": "hi", "id": "1"})
    assert bob.expect("ack")["seq"] == 1
    assert alice.expect("message")["text"] == "hi"
