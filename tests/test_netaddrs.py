"""The server's start-up line names the addresses friends should type (models/netaddrs.py)."""

from models.netaddrs import friend_addresses, friends_line, local_addresses


def test_wildcard_lists_lan_ipv4_first_without_loopback_or_link_local():
    found = friend_addresses(["127.0.0.1", "::1", "fe80::1", "169.254.3.4", "203.0.113.9",
                              "192.168.1.10", "10.0.0.5", "192.168.1.10", "not an ip"])
    assert found == ["10.0.0.5", "192.168.1.10", "203.0.113.9"]


def test_a_chosen_host_is_the_address_to_give():
    assert friend_addresses(["192.168.1.10"], "10.1.2.3") == ["10.1.2.3"]


def test_line_wording():
    assert friends_line(7700, addresses=["127.0.0.1", "192.168.1.10"]) == \
        "friends connect to 192.168.1.10:7700"
    assert friends_line(7700, addresses=["192.168.1.10", "10.0.0.5"]) == \
        "friends connect to 10.0.0.5:7700 or 192.168.1.10:7700"
    assert "port 7700" in friends_line(7700, addresses=["127.0.0.1"])


def test_this_machine_has_a_loopback_address():
    assert "127.0.0.1" in local_addresses()
