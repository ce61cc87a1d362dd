def test_add_then_search_finds_it(memory):
    added = memory.add("I moved to Lisbon and I'm vegetarian", user_id="alice")
    assert added["results"][0]["event"] == "ADD"
    hits = memory.search("vegetarian food", user_id="alice")["results"]
    assert hits[0]["memory"] == "I moved to Lisbon and I'm vegetarian"
    assert 0 <= hits[0]["score"] <= 1
