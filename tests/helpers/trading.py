"""The trading use cases as the API calls them: the venue decided for the user (and the order), then the
use case through it. Tests that drive services directly use these, so they go the blueprints' way."""

from __future__ import annotations

from services.trading import books, orders
from services.trading.venues import venue_for


def place_order(uid, inp, **kw):
    return orders.place_order(venue_for(uid), inp, **kw)


def place_smart_order(uid, inp, position_size, **kw):
    return orders.place_smart_order(venue_for(uid), inp, position_size, **kw)


def basket_order(uid, strategy, inputs):
    return orders.basket_order(venue_for(uid), strategy, inputs)


def split_order(uid, inp, splitsize):
    return orders.split_order(venue_for(uid), inp, splitsize)


def modify_order(uid, orderid, inp):
    return orders.modify_order(venue_for(uid, orderid=orderid), orderid, inp)


def cancel_order(uid, orderid):
    return orders.cancel_order(venue_for(uid, orderid=orderid), orderid)


def cancel_all_orders(uid):
    return orders.cancel_all_orders(venue_for(uid))


def close_all_positions(uid, **kw):
    return orders.close_all_positions(venue_for(uid), **kw)


def order_status(uid, orderid):
    return orders.order_status(venue_for(uid, orderid=orderid), orderid)


def open_position(uid, symbol, exchange, product):
    return orders.open_position(venue_for(uid), symbol, exchange, product)


def orderbook(uid):
    return books.orderbook(venue_for(uid))


def tradebook(uid):
    return books.tradebook(venue_for(uid))


def positionbook(uid):
    return books.positionbook(venue_for(uid))


def holdings(uid):
    return books.holdings(venue_for(uid))


def funds(uid):
    return books.funds(venue_for(uid))


def quote(uid, symbol, exchange):
    return books.quote(venue_for(uid), symbol, exchange)
