"""The plugin's routes called in process, through TensorBoard's own WSGI app."""

import json


def plugin_client(logdir, provider_class=None):
    """A werkzeug client of the plugin over TensorBoard's Python data provider
    (or a subclass of it) on `logdir`, keeping every step; returns
    (client, multiplexer, provider)."""
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from werkzeug import test as werkzeug_test
    from werkzeug import wrappers

    from tb_weightnorm import plugin
    from tb_weightnorm.wire import metadata

    multiplexer = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={metadata.PLUGIN_NAME: 0})
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = (provider_class or data_provider.MultiplexerDataProvider)(multiplexer, str(logdir))
    ctx = base_plugin.TBContext(logdir=str(logdir), data_provider=provider)
    app = application.TensorBoardWSGI([plugin.WeightHealthPlugin(ctx)])
    return werkzeug_test.Client(app, wrappers.Response), multiplexer, provider


def plugin_get(client, route):
    """(response, JSON body or bytes) of a GET of a plugin route."""
    response = client.get("/data/plugin/weight_health/" + route)
    body = response.get_data()
    return response, (json.loads(body) if response.mimetype == "application/json" else body)


def plugin_ok(client, route):
    """The JSON body of a plugin route that must answer 200."""
    response, body = plugin_get(client, route)
    assert response.status_code == 200, body
    return body
