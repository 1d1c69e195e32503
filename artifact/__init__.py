"""oilwater: reproduce 'Like Oil and Water: Group Robustness and Poisoning Defenses Don't Mix'."""
