"""What judging costs in money: a profile's token prices applied to the tokens its providers reported."""
